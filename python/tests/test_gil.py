"""Acceptance 5: 1,000 concurrent calls run on the Rust runtime while another Python thread
keeps running (the GIL is released during the Rust work)."""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from mcp_rust import MCPManager
from mcp_rust.sync import MCPManagerSync


class Ticker:
    """A thread that notes the time every few milliseconds; its longest gap shows how long
    it was kept from running."""

    def __init__(self) -> None:
        self.ticks = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.ticks.append(time.monotonic())
            time.sleep(0.002)

    def __enter__(self) -> "Ticker":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def longest_gap(self) -> float:
        return max(b - a for a, b in zip(self.ticks, self.ticks[1:]))


async def test_1000_concurrent_calls_leave_other_threads_running(test_server_bin):
    async with MCPManager() as manager:
        await manager.deploy_server(
            {"name": "gil", "command": test_server_bin, "replicas": 2}, wait_ready=True
        )
        await manager.wait_until_ready("gil")
        with Ticker() as ticker:
            started = time.monotonic()
            results = await asyncio.gather(
                *[manager.execute_tool("gil", "sleep", {"ms": 1500}) for _ in range(1000)]
            )
            elapsed = time.monotonic() - started
        assert len(results) == 1000
        assert all(r["content"][0]["text"] == "slept 1500 ms" for r in results)
        # The calls overlapped (not one after another) ...
        assert elapsed < 60
        # ... and the other thread ran throughout: had a call held the GIL while it waited
        # for its 1.5 s answer, the ticker would have stalled at least that long.
        assert ticker.longest_gap() < 1.0, ticker.longest_gap()
        assert len(ticker.ticks) > 100


def test_blocking_sync_calls_release_the_gil(test_server_bin):
    manager = MCPManagerSync()
    try:
        manager.deploy_server({"name": "gil", "command": test_server_bin}, wait_ready=True)
        with Ticker() as ticker, ThreadPoolExecutor(max_workers=20) as pool:
            results = list(
                pool.map(lambda _: manager.execute_tool("gil", "sleep", {"ms": 1500}), range(100))
            )
            state = manager.get_server_state("gil")
        assert len(results) == 100
        assert state == "running"
        assert ticker.longest_gap() < 1.0, ticker.longest_gap()
    finally:
        manager.stop()
