"""How the package's awaitables behave in asyncio: a cancelled call stops waiting and
the loop goes on; calls from two event loops at once (a sync manager's background loop and
the caller's) each get their own results; a program that exits with calls in flight exits
cleanly."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
import time

from mcp_rust import MCPManager
from mcp_rust.sync import MCPManagerSync


async def test_a_cancelled_call_stops_waiting_and_the_next_calls_are_answered(test_server_bin):
    async with MCPManager() as manager:
        await manager.deploy_server(
            {"name": "slow", "command": test_server_bin, "replicas": 1}, wait_ready=True
        )
        started = time.monotonic()
        try:
            await asyncio.wait_for(manager.execute_tool("slow", "sleep", {"ms": 5000}), 0.3)
        except asyncio.TimeoutError:
            pass
        else:
            raise AssertionError("a 5 s call finished within 0.3 s")
        assert time.monotonic() - started < 3
        # Many calls in flight together, each answered with its own text.
        texts = [f"after-{i}" for i in range(50)]
        results = await asyncio.gather(
            *[manager.execute_tool("slow", "echo", {"text": t}) for t in texts]
        )
        assert [r["content"][0]["text"] for r in results] == texts


async def test_two_event_loops_call_at_once(test_server_bin):
    spec = {"name": "both", "command": test_server_bin, "replicas": 1}
    with MCPManagerSync() as background:
        background.deploy_server(spec, wait_ready=True)
        async with MCPManager() as manager:
            await manager.deploy_server(spec, wait_ready=True)

            def sync_calls() -> list:
                return [
                    background.execute_tool("both", "echo", {"text": f"sync-{i}"})["content"][0]["text"]
                    for i in range(30)
                ]

            async def async_calls() -> list:
                results = []
                for i in range(30):
                    result = await manager.execute_tool("both", "echo", {"text": f"async-{i}"})
                    results.append(result["content"][0]["text"])
                return results

            from_thread, from_loop = await asyncio.gather(
                asyncio.to_thread(sync_calls), async_calls()
            )
    assert from_thread == [f"sync-{i}" for i in range(30)]
    assert from_loop == [f"async-{i}" for i in range(30)]


def test_a_program_that_exits_with_calls_in_flight_exits_cleanly(test_server_bin):
    program = textwrap.dedent(
        f"""
        import asyncio
        from mcp_rust import MCPManager

        async def main():
            manager = MCPManager()
            await manager.deploy_server(
                {{"name": "slow", "command": {test_server_bin!r}, "replicas": 1}}, wait_ready=True
            )
            # Left running: the loop ends and the interpreter finalizes while the runtime
            # still finishes these calls.
            for ms in (50, 100, 200, 400):
                asyncio.ensure_future(manager.execute_tool("slow", "sleep", {{"ms": ms}}))
            await asyncio.sleep(0.1)

        asyncio.run(main())
        print("done", flush=True)
        """
    )
    run = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=60
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "done"
    assert "Fatal Python error" not in run.stderr, run.stderr
