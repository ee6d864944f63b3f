"""Shared fixtures: binaries of the workspace, real MCP servers, real mcpd clusters.

Async tests are plain ``async def`` functions, run with ``asyncio.run`` (no plugin needed).
"""

from __future__ import annotations

import asyncio
import inspect
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Optional

import pytest

REPO = Path(__file__).resolve().parents[2]


def pytest_pyfunc_call(pyfuncitem):  # noqa: D103 - pytest hook
    if inspect.iscoroutinefunction(pyfuncitem.obj):
        names = pyfuncitem._fixtureinfo.argnames
        kwargs = {name: pyfuncitem.funcargs[name] for name in names}
        asyncio.run(pyfuncitem.obj(**kwargs))
        return True
    return None


def _binary(name: str) -> str:
    explicit = os.environ.get("MCP_RUST_BIN_DIR")
    dirs = [Path(explicit)] if explicit else []
    dirs += [REPO / "target" / "debug", REPO / "target" / "release"]
    for d in dirs:
        candidate = d / name
        if candidate.exists():
            return str(candidate)
    pytest.skip(f"{name} is not built (cargo build --bins); looked in {', '.join(map(str, dirs))}")
    raise AssertionError("unreachable")


@pytest.fixture(scope="session")
def mcpd_bin() -> str:
    return _binary("mcpd")


@pytest.fixture(scope="session")
def test_server_bin() -> str:
    return _binary("mcp-test-server")


@pytest.fixture(scope="session")
def time_server_spec():
    """A spec for the real PyPI server `mcp-server-time` (installed in this venv)."""

    def spec(name: str = "time", **extra) -> dict:
        base = {
            "name": name,
            "transport": "stdio",
            "command": sys.executable,
            "args": ["-m", "mcp_server_time", "--local-timezone", "UTC"],
        }
        base.update(extra)
        return base

    return spec


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Cluster:
    """`mcpd node` processes on loopback, killed at the end."""

    def __init__(self, mcpd: str, size: int, extra_args: Optional[List[str]] = None) -> None:
        self.mcpd = mcpd
        self.dir = Path(tempfile.mkdtemp(prefix="mcp-rust-pytest-"))
        self.extra_args = extra_args or []
        self.procs: Dict[int, subprocess.Popen] = {}
        self.addrs: Dict[int, str] = {i: f"127.0.0.1:{free_port()}" for i in range(1, size + 1)}
        initial = ",".join(f"{i}={a}" for i, a in self.addrs.items())
        for node_id, addr in self.addrs.items():
            self._spawn(node_id, addr, initial)

    def _spawn(self, node_id: int, addr: str, initial: str) -> None:
        log = open(self.dir / f"node-{node_id}.log", "ab")
        args = [
            self.mcpd, "node",
            "--id", str(node_id),
            "--grpc-addr", addr,
            "--data-dir", str(self.dir / f"node-{node_id}"),
            "--initial-cluster", initial,
            "--metrics-addr", f"127.0.0.1:{free_port()}",
            "--leader-election-timeout-ms", "400",
            "--heartbeat-interval-ms", "100",
            *self.extra_args,
        ]
        env = dict(os.environ, RUST_LOG="info")
        env.pop("MCPD_ADMIN_TOKEN", None)
        self.procs[node_id] = subprocess.Popen(args, stdout=log, stderr=log, stdin=subprocess.DEVNULL, env=env)

    @property
    def nodes(self) -> List[str]:
        return list(self.addrs.values())

    def kill(self, node_id: int) -> None:
        """kill -9."""
        proc = self.procs[node_id]
        proc.send_signal(signal.SIGKILL)
        proc.wait()

    def node_of(self, addr: str) -> int:
        return next(i for i, a in self.addrs.items() if a == addr)

    def logs(self) -> str:
        out = []
        for path in sorted(self.dir.glob("node-*.log")):
            out.append(f"--- {path.name}\n" + path.read_text(errors="replace")[-3000:])
        return "\n".join(out)

    def close(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def cluster3(mcpd_bin):
    cluster = Cluster(mcpd_bin, 3)
    try:
        yield cluster
    finally:
        cluster.close()


def wait_for(what: str, timeout: float, check):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            value = check()
            if value:
                return value
        except Exception as e:  # noqa: BLE001 - report the last one
            last = e
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}; last error: {last!r}")
