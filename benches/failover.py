"""Leader failover on loopback: kill -9 the leader of a 3-node `mcpd` cluster, again and
again, and measure how long until the cluster accepts a write again.

Each trial:
1. finds the leader and starts a load on the two other nodes: tool calls (to a server
   with an instance on every node) and, on a second thread, deploys;
2. `kill -9`s the leader and records, from that instant, when the first deploy through a
   survivor is acknowledged;
3. restarts the killed node on its data dir and waits until it is back in the cluster.

It reports p50/max over the trials and counts failed calls and failed writes during the
whole run. A failed write is either in flight at the kill instant (sent before it: it may
have reached the dying leader, so neither node nor client sends it again, and it ends
`unavailable`, maybe applied) or issued during the election (sent after the kill: it must
wait for the new leader instead, so the target for these is 0). The node flags are mcpd's defaults
unless given with --node-arg. Usage and recorded results: docs/benchmarks.md.

    python3 benches/failover.py --mcpd target/release/mcpd --trials 20
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from typing import Dict, List, Optional


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Cluster:
    """Three `mcpd node` processes on loopback, killed when the run ends."""

    def __init__(self, mcpd: str, node_args: List[str]) -> None:
        self.mcpd = mcpd
        self.node_args = node_args
        self.dir = tempfile.mkdtemp(prefix="mcpd-failover-")
        self.addrs: Dict[int, str] = {i: f"127.0.0.1:{free_port()}" for i in (1, 2, 3)}
        self.initial = ",".join(f"{i}={a}" for i, a in self.addrs.items())
        self.procs: Dict[int, subprocess.Popen] = {}
        for node in self.addrs:
            self.start(node)

    def start(self, node: int) -> None:
        log = open(os.path.join(self.dir, f"node-{node}.log"), "ab")
        self.procs[node] = subprocess.Popen(
            [
                self.mcpd, "node", "--id", str(node), "--grpc-addr", self.addrs[node],
                "--data-dir", os.path.join(self.dir, f"node-{node}"),
                "--initial-cluster", self.initial,
                "--metrics-addr", f"127.0.0.1:{free_port()}",
                *self.node_args,
            ],
            stdout=log, stderr=log, stdin=subprocess.DEVNULL,
        )

    def kill(self, node: int) -> None:
        self.procs[node].send_signal(signal.SIGKILL)
        self.procs[node].wait()

    def close(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()

    def cli(self, node: int, *args: str, timeout: float = 10) -> subprocess.CompletedProcess:
        return subprocess.run(
            [self.mcpd, "--endpoint", self.addrs[node], "-o", "json", *args],
            capture_output=True, text=True, timeout=timeout,
        )

    def status(self, node: int) -> Optional[dict]:
        try:
            done = self.cli(node, "status", timeout=2)
        except subprocess.TimeoutExpired:
            return None
        return json.loads(done.stdout) if done.returncode == 0 else None

    def leader(self, nodes) -> Optional[int]:
        """The leader every node in `nodes` names, if they agree and it is one of them."""
        views = [self.status(n) for n in nodes]
        if any(v is None for v in views):
            return None
        leaders = {v.get("leader_id") for v in views}
        if len(leaders) != 1:
            return None
        leader = leaders.pop()
        return leader if leader in nodes else None


def wait(what: str, timeout: float, probe):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(0.02)
    raise SystemExit(f"timed out waiting for {what}")


def deploy_echo(cluster: Cluster, test_server: str) -> None:
    """Deploys `echo` (the fast test server) with a replica per node and waits until every
    node answers a call to it."""
    spec = json.dumps({"name": "echo", "command": os.path.abspath(test_server), "replicas": 3})
    done = subprocess.run(
        [cluster.mcpd, "--endpoint", cluster.addrs[1], "deploy", "-f", "-"],
        input=spec, capture_output=True, text=True, timeout=30,
    )
    if done.returncode != 0:
        raise SystemExit(f"deploy failed: {done.stderr}")
    for node in sorted(cluster.addrs):
        wait(f"echo on node {node}", 30,
             lambda node=node: cluster.cli(node, "call", "echo", "echo", '{"text": "w"}').returncode == 0)


class Load:
    """Tool calls and deploys through the given nodes until stopped."""

    def __init__(self, cluster: Cluster, nodes: List[int], trial: int) -> None:
        self.cluster, self.nodes, self.trial = cluster, nodes, trial
        self.calls = self.failed_calls = self.writes = self.failed_writes = 0
        # Failed writes sent before the kill (in flight at that instant: they may have
        # reached the leader, so the client does not resend them) and after it (issued
        # during the election: these must wait for the new leader instead of failing).
        self.failed_in_flight = self.failed_during_election = 0
        self.killed_at: Optional[float] = None
        self.errors: List[str] = []
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._calls), threading.Thread(target=self._writes)]

    def __enter__(self) -> "Load":
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        for t in self.threads:
            t.join()

    def _calls(self) -> None:
        i = 0
        while not self.stop.is_set():
            node = self.nodes[i % len(self.nodes)]
            i += 1
            done = self.cluster.cli(node, "call", "echo", "echo", '{"text": "x"}', timeout=30)
            self.calls += 1
            if done.returncode != 0:
                self.failed_calls += 1
                self.errors.append(f"call via node {node}: {done.stderr.strip()}")

    def _writes(self) -> None:
        i = 0
        while not self.stop.is_set():
            node = self.nodes[i % len(self.nodes)]
            i += 1
            spec = json.dumps({"name": f"w{self.trial}-{i}", "command": "true", "replicas": 0})
            sent_at = time.monotonic()
            done = subprocess.run(
                [self.cluster.mcpd, "--endpoint", self.cluster.addrs[node], "-o", "json",
                 "deploy", "-f", "-"],
                input=spec, capture_output=True, text=True, timeout=30,
            )
            self.writes += 1
            if done.returncode != 0:
                self.failed_writes += 1
                if self.killed_at is not None and sent_at >= self.killed_at:
                    self.failed_during_election += 1
                    when = "issued during the election"
                else:
                    self.failed_in_flight += 1
                    when = "in flight at the kill"
                self.errors.append(f"deploy via node {node} ({when}): {done.stderr.strip()}")


def first_write_after(cluster: Cluster, nodes: List[int], since: float) -> float:
    """Seconds from `since` until a deploy through one of `nodes` is acknowledged."""
    i = 0
    while True:
        node = nodes[i % len(nodes)]
        i += 1
        spec = json.dumps({"name": f"probe-{i}-{time.time_ns()}", "command": "true", "replicas": 0})
        done = subprocess.run(
            [cluster.mcpd, "--endpoint", cluster.addrs[node], "-o", "json", "deploy", "-f", "-"],
            input=spec, capture_output=True, text=True, timeout=30,
        )
        if done.returncode == 0:
            return time.monotonic() - since
        if time.monotonic() - since > 60:
            raise SystemExit(f"no write accepted within 60 s: {done.stderr}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mcpd", default="target/release/mcpd")
    parser.add_argument("--test-server", default=None, help="mcp-test-server binary (default: next to mcpd)")
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--node-arg", action="append", default=[], help="extra flag for every node")
    args = parser.parse_args()
    test_server = args.test_server or os.path.join(os.path.dirname(args.mcpd), "mcp-test-server")

    cluster = Cluster(args.mcpd, args.node_arg)
    try:
        wait("a leader", 30, lambda: cluster.leader([1, 2, 3]))
        deploy_echo(cluster, test_server)

        writes: List[float] = []
        totals = {"calls": 0, "failed_calls": 0, "writes": 0, "failed_writes": 0,
                  "failed_in_flight": 0, "failed_during_election": 0}
        errors: List[str] = []
        for trial in range(args.trials):
            leader = wait("a leader", 30, lambda: cluster.leader([1, 2, 3]))
            survivors = [n for n in (1, 2, 3) if n != leader]
            with Load(cluster, survivors, trial) as load:
                time.sleep(0.3)
                killed_at = time.monotonic()
                load.killed_at = killed_at
                cluster.kill(leader)
                write = first_write_after(cluster, survivors, killed_at)
                time.sleep(0.3)
            writes.append(write)
            for key in totals:
                totals[key] += getattr(load, key)
            errors.extend(load.errors)
            print(f"trial {trial + 1}: killed node {leader}; write accepted after {write * 1000:.0f} ms", flush=True)
            cluster.start(leader)
            wait(f"node {leader} back", 60, lambda: cluster.leader([1, 2, 3]))

        def ms(values: List[float], f) -> str:
            return f"{f(values) * 1000:.0f}"

        print()
        print(f"node flags: {' '.join(args.node_arg) or '(defaults)'}; trials: {args.trials}")
        print("| measure | p50 (ms) | max (ms) |")
        print("|---|---:|---:|")
        print(f"| first write accepted after the leader's kill -9 | {ms(writes, statistics.median)} | {ms(writes, max)} |")
        print()
        print(f"tool calls through survivors: {totals['calls']}, failed: {totals['failed_calls']}")
        print(f"writes through survivors: {totals['writes']}, failed: {totals['failed_writes']} "
              f"({totals['failed_in_flight']} in flight at the kill, so maybe applied and not resent; "
              f"{totals['failed_during_election']} issued during the election)")
        for line in errors[:10]:
            print("  ", line)
    finally:
        cluster.close()


if __name__ == "__main__":
    sys.exit(main())
