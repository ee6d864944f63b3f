"""Availability under faults: a 3-node `mcpd` cluster on loopback, a client workload a user
would run, and random kill -9s and pauses of random nodes for a fixed time (90 s by default).

The workload goes through the client library the way a user's does, in one of two ways:
- `--client cli` (default): every operation is one `mcpd --endpoints A,B,C` command (the
  CLI's `ClusterClient`: fresh connections each time, moves to the next node when one
  cannot be reached, waits out elections);
- `--client python`: one long-lived `mcp_rust.MCPManager` with
  `DistributedConfig(cluster_nodes=[A, B, C])` for the whole run (the same client library,
  whose pooled channels must notice a killed or paused node by themselves).
Concurrent workers, each running one operation at a time, mix:
- tool calls: `call echo echo` on a server with an instance on every node;
- reads: `ls` and `get echo` (linearizable: served by the leader);
- writes: `deploy` of a distinct server (no instances) and `undeploy` of one whose deploy
  was acknowledged.

Meanwhile a fault thread injects one fault at a time, so a majority is always up: `kill -9`
of a random node then a restart on its data dir, or `SIGSTOP` then `SIGCONT` of one. Each
node is down for 1.5-4 s (`--max-down`), then the next fault comes after a gap of 3-5 s.

Every operation ends as `ok`, `failed` (with the error's category), or `unknown`: a write
or tool call that failed after it may have reached a node (neither the client library
nor a node sends such a request again; the client says "may have run", or the node says
that the leader it forwarded the write to vanished while it had it and the write "may or
may not have been applied"). Success rate = ok / all operations. At the end, with all nodes up, a linearizable
listing checks that no acknowledged write was lost: every acknowledged deploy is there and
every acknowledged undeploy is gone (servers with an unknown write are left out).

    python3 benches/faults.py --mcpd target/release/mcpd --seconds 90
    PYTHONPATH=python python3 benches/faults.py --client python
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from typing import Dict, List, Optional, Set, Tuple

sys.path.insert(0, os.path.dirname(__file__))
from failover import Cluster, deploy_echo, wait  # noqa: E402  (same directory)

# How the client library and the nodes say that a failed write (or tool call) may have
# taken effect: the request may have reached a node before the failure.
MAYBE_APPLIED = ("may have run", "may or may not", "may still be applied", "did not answer within")


def category(stderr: str) -> str:
    """The error category the CLI prints last, as `message [kind]`."""
    text = stderr.strip()
    if text.endswith("]") and "[" in text:
        return text[text.rindex("[") + 1 : -1]
    return "other"


class Outcomes:
    """Per operation kind: ok, failed by category, unknown; and the write history."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.ok: Dict[str, int] = collections.Counter()
        self.failed: Dict[Tuple[str, str], int] = collections.Counter()
        self.unknown: Dict[str, int] = collections.Counter()
        self.samples: List[str] = []
        # name -> last acknowledged write ("deploy" / "undeploy"); names with an unknown
        # write are moved to `uncertain` and never written again.
        self.acked: Dict[str, str] = {}
        self.uncertain: Set[str] = set()
        self.latency: Dict[str, List[float]] = collections.defaultdict(list)

    def record(self, kind: str, done: Optional[subprocess.CompletedProcess], write_only: bool, seconds: float) -> str:
        with self.lock:
            self.latency[kind].append(seconds)
            if done is not None and done.returncode == 0:
                self.ok[kind] += 1
                return "ok"
            stderr = done.stderr.strip() if done is not None else "client did not finish within 60 s [timeout]"
            cat = category(stderr)
            maybe = any(m in stderr for m in MAYBE_APPLIED) or (write_only and done is None)
            if len(self.samples) < 12:
                self.samples.append(f"{kind}: {stderr.splitlines()[-1] if stderr else '?'}")
            if maybe:
                self.unknown[kind] += 1
                return "unknown"
            self.failed[(kind, cat)] += 1
            return "failed"


class Workload:
    """Worker threads running CLI operations until `stop` or `max_ops`."""

    def __init__(self, cluster: Cluster, workers: int, max_ops: int, seed: int) -> None:
        self.cluster = cluster
        self.endpoints = ",".join(cluster.addrs[n] for n in sorted(cluster.addrs))
        self.out = Outcomes()
        self.stop = threading.Event()
        self.ops = 0
        self.max_ops = max_ops
        self.seed = seed
        self.worker_count = workers
        self.threads = [threading.Thread(target=self._worker, args=(w,)) for w in range(workers)]

    def _take_op(self) -> bool:
        """Counts one more operation, unless the run is over (stopped, or `max_ops` done)."""
        if self.stop.is_set():
            return False
        with self.out.lock:
            if self.ops >= self.max_ops:
                return False
            self.ops += 1
            return True

    def cli(self, kind: str, *args: str, stdin: Optional[str] = None, write: bool = False) -> str:
        """Runs one operation as one CLI command and records its outcome."""
        started = time.monotonic()
        try:
            done: Optional[subprocess.CompletedProcess] = subprocess.run(
                [self.cluster.mcpd, "--endpoints", self.endpoints, "-o", "json", *args],
                input=stdin, capture_output=True, text=True, timeout=60,
            )
        except subprocess.TimeoutExpired:
            done = None
        return self.out.record(kind, done, write_only=write, seconds=time.monotonic() - started)

    def _worker(self, worker: int) -> None:
        rng = random.Random(self.seed * 1000 + worker)
        mine: List[str] = []  # this worker's acknowledged, not yet undeployed servers
        i = 0
        while self._take_op():
            i += 1
            roll = rng.random()
            if roll < 0.5:
                self.cli("call", "call", "echo", "echo", json.dumps({"text": f"{worker}-{i}"}))
            elif roll < 0.65:
                self.cli("read: ls", "ls")
            elif roll < 0.8:
                self.cli("read: get", "get", "echo")
            elif roll < 0.92 or not mine:
                name = f"f{worker}-{i}"
                spec = json.dumps({"name": name, "command": "true", "replicas": 0})
                result = self.cli("write: deploy", "deploy", "-f", "-", stdin=spec, write=True)
                self._written(name, "deploy", result, mine)
            else:
                name = mine.pop(rng.randrange(len(mine)))
                result = self.cli("write: undeploy", "undeploy", name, write=True)
                self._written(name, "undeploy", result, mine)

    def _written(self, name: str, op: str, result: str, mine: List[str]) -> None:
        with self.out.lock:
            if result == "ok":
                self.out.acked[name] = op
                if op == "deploy":
                    mine.append(name)
            elif result == "unknown":
                self.out.uncertain.add(name)
                self.out.acked.pop(name, None)
            elif op == "undeploy":
                # Refused for sure (nothing changed): the server is still deployed.
                mine.append(name)


class PythonWorkload(Workload):
    """The same mix through one long-lived `MCPManager` (client mode), on its own thread."""

    def __init__(self, cluster: Cluster, workers: int, max_ops: int, seed: int) -> None:
        super().__init__(cluster, workers, max_ops, seed)
        self.threads = [threading.Thread(target=lambda: asyncio.run(self._main()))]

    async def _main(self) -> None:
        from mcp_rust import DistributedConfig, MCPManager

        nodes = [self.cluster.addrs[n] for n in sorted(self.cluster.addrs)]
        async with MCPManager(distributed=DistributedConfig(cluster_nodes=nodes)) as manager:
            await asyncio.gather(*(self._worker_async(manager, w) for w in range(self.worker_count)))

    async def _op(self, kind: str, coro, write: bool) -> str:
        started = time.monotonic()
        done: Optional[subprocess.CompletedProcess]
        try:
            await asyncio.wait_for(coro, 60)
            done = subprocess.CompletedProcess([], 0, "", "")
        except asyncio.TimeoutError:
            done = None
        except Exception as e:  # noqa: BLE001 (every failure is counted by its category)
            done = subprocess.CompletedProcess([], 1, "", f"{e} [{getattr(e, 'kind', type(e).__name__)}]")
        return self.out.record(kind, done, write_only=write, seconds=time.monotonic() - started)

    async def _worker_async(self, manager, worker: int) -> None:
        rng = random.Random(self.seed * 1000 + worker)
        mine: List[str] = []
        i = 0
        while self._take_op():
            i += 1
            roll = rng.random()
            if roll < 0.5:
                await self._op("call", manager.execute_tool("echo", "echo", {"text": f"{worker}-{i}"}), False)
            elif roll < 0.8:
                await self._op("read: list", manager.list_servers(), False)
            elif roll < 0.92 or not mine:
                name = f"f{worker}-{i}"
                spec = {"name": name, "command": "true", "replicas": 0}
                result = await self._op("write: deploy", manager.deploy_server(spec), True)
                self._written(name, "deploy", result, mine)
            else:
                name = mine.pop(rng.randrange(len(mine)))
                result = await self._op("write: undeploy", manager.undeploy_server(name), True)
                self._written(name, "undeploy", result, mine)


def inject(cluster: Cluster, seconds: float, stop: threading.Event, rng: random.Random, log: List[str],
           max_down: float, kinds: List[str], nodes: List[int]) -> None:
    """One fault at a time until `seconds` have passed: kill -9 + restart, or pause + resume."""
    started = time.monotonic()
    time.sleep(rng.uniform(2, 4))
    while time.monotonic() - started < seconds - 6 and not stop.is_set():
        node = rng.choice(nodes)
        kind = rng.choice(kinds)
        down = rng.uniform(1.5, max_down)
        at = time.monotonic() - started
        if kind == "kill":
            cluster.kill(node)
            time.sleep(down)
            cluster.start(node)
        else:
            cluster.procs[node].send_signal(signal.SIGSTOP)
            time.sleep(down)
            cluster.procs[node].send_signal(signal.SIGCONT)
        log.append(f"{at:5.1f} s: {kind} node {node} for {down:.1f} s")
        time.sleep(rng.uniform(3, 5))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mcpd", default="target/release/mcpd")
    parser.add_argument("--test-server", default=None, help="mcp-test-server binary (default: next to mcpd)")
    parser.add_argument("--seconds", type=float, default=90)
    parser.add_argument("--client", choices=["cli", "python"], default="cli",
                        help="one CLI process per operation, or one long-lived Python MCPManager")
    parser.add_argument("--workers", type=int, default=4, help="concurrent client operations")
    parser.add_argument("--max-ops", type=int, default=60000, help="upper bound on operations")
    parser.add_argument("--seed", type=int, default=14)
    parser.add_argument("--max-down", type=float, default=4, help="longest kill or pause of a node, in seconds")
    parser.add_argument("--kinds", default="kill,pause", help="fault kinds to draw from")
    parser.add_argument("--nodes", default="1,2,3", help="nodes to draw fault targets from")
    parser.add_argument("--node-arg", action="append", default=[], help="extra flag for every node")
    args = parser.parse_args()
    test_server = args.test_server or os.path.join(os.path.dirname(args.mcpd), "mcp-test-server")

    cluster = Cluster(args.mcpd, args.node_arg)
    try:
        wait("a leader", 30, lambda: cluster.leader([1, 2, 3]))
        deploy_echo(cluster, test_server)

        rng = random.Random(args.seed)
        faults: List[str] = []
        load = (PythonWorkload if args.client == "python" else Workload)(cluster, args.workers, args.max_ops, args.seed)
        injector = threading.Thread(target=inject, args=(cluster, args.seconds, load.stop, rng, faults, args.max_down,
                                                         args.kinds.split(","), [int(n) for n in args.nodes.split(",")]))
        started = time.monotonic()
        for t in load.threads:
            t.start()
        injector.start()
        load.stop.wait(args.seconds)
        load.stop.set()
        injector.join()
        for t in load.threads:
            t.join()
        elapsed = time.monotonic() - started
        if load.ops >= args.max_ops:
            print(f"note: the workload stopped early, at --max-ops {args.max_ops}")

        # Every node up again, then the check of acknowledged writes.
        for proc in cluster.procs.values():
            proc.send_signal(signal.SIGCONT)
        wait("a leader after the run", 60, lambda: cluster.leader([1, 2, 3]))
        listing = cluster.cli(1, "ls", timeout=30)
        if listing.returncode != 0:
            raise SystemExit(f"final listing failed: {listing.stderr}")
        listed = json.loads(listing.stdout or "[]")
        servers = listed.get("servers", listed) if isinstance(listed, dict) else listed
        present = {s["name"] for s in servers}
        out = load.out
        lost_deploys = sorted(n for n, op in out.acked.items() if op == "deploy" and n not in present)
        back_undeploys = sorted(n for n, op in out.acked.items() if op == "undeploy" and n in present)

        kinds = sorted(set(out.ok) | {k for k, _ in out.failed} | set(out.unknown))
        total = ok = 0
        print(f"node flags: {' '.join(args.node_arg) or '(defaults)'}; {elapsed:.0f} s, "
              f"{len(faults)} faults ({sum('kill' in f for f in faults)} kill -9, "
              f"{sum('pause' in f for f in faults)} pauses), {args.workers} concurrent operations through "
              + ("one `mcpd --endpoints A,B,C` process each" if args.client == "cli"
                 else "one long-lived Python `MCPManager` (client mode, 3 endpoints)"))
        print()
        def pct(values: List[float], q: float) -> str:
            ordered = sorted(values)
            return f"{ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000:.0f}" if ordered else "-"

        print("| operation | all | ok | failed (category: count) | unknown (maybe applied) | success | p50 / p99 / max (ms) |")
        print("|---|---:|---:|---|---:|---:|---:|")
        for kind in kinds:
            failed = {cat: n for (k, cat), n in out.failed.items() if k == kind}
            all_ = out.ok[kind] + sum(failed.values()) + out.unknown[kind]
            total += all_
            ok += out.ok[kind]
            failed_text = ", ".join(f"{c}: {n}" for c, n in sorted(failed.items())) or "0"
            print(f"| {kind} | {all_} | {out.ok[kind]} | {failed_text} | {out.unknown[kind]} | {100 * out.ok[kind] / all_:.1f}% "
                  f"| {pct(out.latency[kind], 0.5)} / {pct(out.latency[kind], 0.99)} / {pct(out.latency[kind], 1.0)} |")
        unknown = sum(out.unknown.values())
        print(f"| **all** | {total} | {ok} | {total - ok - unknown} | {unknown} | **{100 * ok / max(total, 1):.1f}%** | |")
        print()
        print(f"acknowledged writes checked: {len(out.acked)} servers "
              f"({sum(op == 'deploy' for op in out.acked.values())} deployed, "
              f"{sum(op == 'undeploy' for op in out.acked.values())} undeployed; "
              f"{len(out.uncertain)} with an unknown write left out); "
              f"lost: {len(lost_deploys) + len(back_undeploys)}")
        for name in lost_deploys[:5]:
            print(f"   LOST: acknowledged deploy of {name} is missing")
        for name in back_undeploys[:5]:
            print(f"   LOST: acknowledged undeploy of {name} is undone")
        print()
        print("faults:", "; ".join(faults))
        if out.samples:
            print("first errors:")
            for line in out.samples:
                print("  ", line[:300])
        if lost_deploys or back_undeploys:
            sys.exit(1)
    finally:
        for proc in cluster.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGCONT)
        cluster.close()


if __name__ == "__main__":
    main()
