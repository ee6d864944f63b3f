"""A tools/call from a Python program: directly, through mcp_rust, through Python proxies.

Every path ends at the same server, one server process each, driven by the same asyncio
client loop. Two backends (`--backend`):
- `fast` (default): the repo's Rust `mcp-test-server`, tool `echo`: a few microseconds per
  call, so what is measured is the path, not the server;
- `time`: the real PyPI `mcp-server-time`, tool `get_current_time` (a slow Python server).

Paths:

- direct:         the official `mcp` SDK client on a stdio session to the server
- mcp_rust:       `MCPManager` (embedded node) -> its stdio session pool -> the server
- mcp-proxy:      SDK client -> Streamable HTTP -> `mcp-proxy` -> stdio -> the server
- fastmcp proxy:  SDK client -> Streamable HTTP -> `fastmcp` proxy -> stdio -> the server

For each: sequential latency (p50/p99 over --calls) and throughput with --concurrency
calls in flight. Paths whose package is missing are reported as skipped. Usage and the
recorded results: docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import glob
import importlib.util
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import asynccontextmanager
from typing import AsyncIterator, Awaitable, Callable, Dict, List, Optional, Tuple

class Backend:
    """The server every path ends at: its argv, and the tool call to make."""

    def __init__(self, command: str, args: List[str], tool: str, arguments: Dict[str, object]) -> None:
        self.command, self.args, self.tool, self.arguments = command, args, tool, arguments


def backend(kind: str, test_server: str) -> Backend:
    if kind == "fast":
        return Backend(test_server, [], "echo", {"text": "x"})
    return Backend(sys.executable, ["-m", "mcp_server_time", "--local-timezone", "UTC"],
                   "get_current_time", {"timezone": "UTC"})


Call = Callable[[], Awaitable[object]]


def percentile(samples: List[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _switches(pid: int) -> int:
    """Context switches so far of every thread of process `pid` (0 if it is gone)."""
    total = 0
    for status in glob.glob(f"/proc/{pid}/task/*/status"):
        try:
            with open(status) as f:
                for line in f:
                    name, _, value = line.partition(":")
                    if name.endswith("ctxt_switches"):  # voluntary and nonvoluntary
                        total += int(value)
        except (OSError, ValueError):
            pass
    return total


def _descendants(pid: int) -> List[int]:
    found = []
    for children in glob.glob(f"/proc/{pid}/task/*/children"):
        try:
            with open(children) as f:
                kids = [int(k) for k in f.read().split()]
        except OSError:
            continue
        for kid in kids:
            found += [kid, *_descendants(kid)]
    return found


def context_switches() -> Tuple[int, int]:
    """Context switches so far: of this process's threads, and of all its descendants
    (the MCP server, a proxy and its server). Each one is a thread going to sleep and being
    woken again, which on a VM is the cost of a path's hand-offs."""
    return _switches(os.getpid()), sum(_switches(kid) for kid in _descendants(os.getpid()))


async def measure(call: Call, calls: int, concurrency: int, total: int) -> Dict[str, float]:
    for _ in range(20):  # warm-up: sessions open, caches filled
        await call()
    latencies = []
    own_before, children_before = context_switches()
    for _ in range(calls):
        started = time.perf_counter()
        await call()
        latencies.append(time.perf_counter() - started)
    own_after, children_after = context_switches()
    gate = asyncio.Semaphore(concurrency)

    async def one() -> None:
        async with gate:
            await call()

    started = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(total)))
    elapsed = time.perf_counter() - started
    return {
        "p50_ms": percentile(latencies, 0.50) * 1000,
        "p99_ms": percentile(latencies, 0.99) * 1000,
        "calls_per_s": total / elapsed,
        "switches_own": (own_after - own_before) / calls,
        "switches_children": (children_after - children_before) / calls,
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def wait_port(port: int, process: subprocess.Popen, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"proxy exited with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            await asyncio.sleep(0.1)
    raise RuntimeError(f"nothing listens on port {port} after {timeout} s")


@asynccontextmanager
async def sdk_client(target, server: Backend) -> AsyncIterator[Call]:
    from mcp import Client

    async with Client(target) as client:
        names = [t.name for t in (await client.list_tools()).tools]
        name = next(n for n in names if n.endswith(server.tool))

        async def call() -> object:
            result = await client.call_tool(name, server.arguments)
            if result.is_error:
                raise RuntimeError(f"tool error: {result}")
            return result

        yield call


@asynccontextmanager
async def direct(server: Backend) -> AsyncIterator[Call]:
    from mcp import StdioServerParameters

    params = StdioServerParameters(command=server.command, args=server.args)
    async with sdk_client(params, server) as call:
        yield call


@asynccontextmanager
async def through_mcp_rust(server: Backend) -> AsyncIterator[Call]:
    from mcp_rust import MCPManager

    async with MCPManager() as manager:
        spec = {"name": "bench", "command": server.command, "args": server.args, "replicas": 1}
        await manager.deploy_server(spec, wait_ready=True)

        async def call() -> object:
            return await manager.execute_tool("bench", server.tool, server.arguments)

        yield call


@asynccontextmanager
async def through_http_proxy(argv: List[str], port: int, server: Backend) -> AsyncIterator[Call]:
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        await wait_port(port, process)
        async with sdk_client(f"http://127.0.0.1:{port}/mcp", server) as call:
            yield call
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()


def fastmcp_argv(python: str, port: int, script_dir: str, server: Backend) -> List[str]:
    script = os.path.join(script_dir, "fastmcp_proxy.py")
    with open(script, "w") as f:
        f.write(
            "import sys\n"
            "from fastmcp.server import create_proxy\n"
            "config = {'mcpServers': {'time': {'command': sys.argv[2], 'args': sys.argv[3:]}}}\n"
            "create_proxy(config).run(transport='http', host='127.0.0.1', port=int(sys.argv[1]))\n"
        )
    return [python, script, str(port), server.command, *server.args]


async def run(args: argparse.Namespace) -> int:
    python = sys.executable
    server = backend(args.backend, args.test_server)
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        paths = {"direct": lambda: direct(server), "mcp_rust": lambda: through_mcp_rust(server)}
        if args.mcp_proxy:
            port = free_port()
            # mcp-proxy lives in its own venv (mcp<2): a Python backend must run from there.
            command = args.mcp_proxy_python if args.backend == "time" else server.command
            argv = [args.mcp_proxy, "--port", str(port), "--host", "127.0.0.1", "--", command, *server.args]
            paths["mcp-proxy"] = lambda: through_http_proxy(argv, port, server)
        if importlib.util.find_spec("fastmcp") is not None:
            fast_port = free_port()
            paths["fastmcp proxy"] = lambda: through_http_proxy(
                fastmcp_argv(python, fast_port, scratch, server), fast_port, server
            )
        else:
            rows.append(("fastmcp proxy", None, "skipped: fastmcp is not installed"))
        for name, open_path in paths.items():
            try:
                async with open_path() as call:
                    result = await measure(call, args.calls, args.concurrency, args.total)
            except ImportError as e:
                rows.append((name, None, f"skipped: {e}"))
                continue
            rows.append((name, result, ""))
    base = next((r for n, r, _ in rows if n == "direct" and r), None)
    print(f"backend: {args.backend}; {args.calls} sequential calls, {args.total} at concurrency {args.concurrency}")
    print(f"| path | p50 (ms) | p99 (ms) | p50 / direct | calls/s at concurrency {args.concurrency} | calls/s / direct "
          "| context switches per sequential call: this process / its children |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, result, note in rows:
        if result is None:
            print(f"| {name} | {note} | | | | | |")
            continue
        p50_ratio = f"{result['p50_ms'] / base['p50_ms']:.2f}" if base else ""
        rate_ratio = f"{result['calls_per_s'] / base['calls_per_s']:.2f}" if base else ""
        print(f"| {name} | {result['p50_ms']:.3f} | {result['p99_ms']:.3f} | {p50_ratio} | "
              f"{result['calls_per_s']:.0f} | {rate_ratio} | "
              f"{result['switches_own']:.1f} / {result['switches_children']:.1f} |")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=500, help="sequential calls per path")
    parser.add_argument("--total", type=int, default=2000, help="calls of the concurrent run")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--backend", choices=["fast", "time"], default="fast")
    parser.add_argument("--test-server", default=os.path.join("target", "release", "mcp-test-server"),
                        help="the fast backend's binary")
    parser.add_argument("--mcp-proxy", default=shutil.which("mcp-proxy"), help="mcp-proxy executable (own venv: it needs mcp<2)")
    parser.add_argument("--mcp-proxy-python", default=None, help="python of the mcp-proxy venv, which must have mcp-server-time")
    args = parser.parse_args()
    if args.mcp_proxy and not args.mcp_proxy_python:
        args.mcp_proxy_python = os.path.join(os.path.dirname(args.mcp_proxy), "python")
    return asyncio.run(run(args))


if __name__ == "__main__":
    sys.exit(main())
