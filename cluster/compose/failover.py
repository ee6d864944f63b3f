#!/usr/bin/env python3
"""Failover test driver for the compose cluster (docker-compose.yml at the repo root).

Brings the three-node cluster up under its own compose project, runs the scenarios below
against real containers, prints a short report and exits non-zero if any check fails:

  1. up: three healthy nodes; a 3-replica stdio server deployed through one node answers
     through the others.
  2. leader kill: `docker kill` the leader; a new leader is elected, calls keep succeeding,
     the killed node's replicas are re-placed; `start` brings it back and it catches up.
  3. partition: `docker network disconnect` a follower; the majority keeps accepting writes,
     the isolated node refuses writes with a clear error and keeps serving calls for the
     instance it hosts; reconnecting heals it with no divergent state.
  4. leader isolation: `docker network disconnect` the leader; writes sent to it from
     inside its container are never acknowledged (no quorum) and never applied later, the
     majority elects a new leader and takes writes; reconnecting heals it: no write
     acknowledged by the old leader's side after isolation exists, nothing acknowledged by
     the majority is lost.
  5. restart: `down` (volumes kept) then `up`: the registry is intact.
  6. teardown: `down -v --remove-orphans` leaves no container, network or volume behind.

Acknowledged writes are tracked through every scenario: "data lost" counts those missing
from the registry afterwards.

Needs Python 3.11 (stdlib only), Docker with `docker compose` or `docker-compose`, the mcpd
image (cluster/compose/build-image.sh) and a host `mcpd` binary as the client.

  python3 cluster/compose/failover.py --mcpd target/release/mcpd [--project NAME] [--keep]

FAILOVER_DEBUG=1 logs every node's role, term and applied index while waiting for them to
converge.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

REPO = Path(__file__).resolve().parents[2]
NODES = (1, 2, 3)
TEST_SERVER = "/usr/local/bin/mcp-test-server"
# What a refused write must say: the node names why it cannot commit.
CLEAR_REFUSAL = re.compile(r"leader|quorum|unavailable|not committed", re.IGNORECASE)
LEADER_DEADLINE_S = 10.0


class Failure(Exception):
    """A check that did not hold."""


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def wait_until(what: str, timeout: float, probe: Callable[[], Any], interval: float = 0.2) -> Any:
    """Polls `probe` until it returns a truthy value; raises Failure after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        try:
            last = probe()
        except Failure as e:
            last = e
        else:
            if last:
                return last
        if time.monotonic() > deadline:
            raise Failure(f"timed out after {timeout:.0f} s waiting for {what} (last: {last!r})")
        time.sleep(interval)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(cmd: list[str], env: dict[str, str] | None = None, timeout: float = 60,
        stdin: str | None = None, check: bool = False) -> subprocess.CompletedProcess[str]:
    try:
        done = subprocess.run(cmd, env=env, input=stdin, capture_output=True, text=True,
                              timeout=timeout)
    except subprocess.TimeoutExpired as e:
        raise Failure(f"{' '.join(cmd)} did not finish in {timeout:.0f} s") from e
    if check and done.returncode != 0:
        raise Failure(f"{' '.join(cmd)} failed ({done.returncode}): {done.stderr.strip()}")
    return done


def compose_command() -> list[str]:
    """`docker compose` when the plugin answers, else `docker-compose`."""
    for cmd in (["docker", "compose"], ["docker-compose"]):
        try:
            if run(cmd + ["version"], timeout=30).returncode == 0:
                return cmd
        except FileNotFoundError:
            continue
    raise Failure("neither `docker compose` nor `docker-compose` is available")


def server_spec(name: str, replicas: int) -> str:
    return json.dumps({
        "name": name,
        "transport": "stdio",
        "command": TEST_SERVER,
        "args": ["--instance-name", name],
        "replicas": replicas,
    })


@dataclass
class Cluster:
    """The compose project and the ways to reach its nodes."""

    project: str
    compose_file: Path
    mcpd: str
    image: str
    prometheus_image: str | None
    ports: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.compose_cmd = compose_command()
        names = [f"NODE{n}_{kind}_PORT" for n in NODES for kind in ("GRPC", "METRICS")]
        if self.prometheus_image:
            names.append("PROMETHEUS_PORT")
        self.ports = {name: free_port() for name in names}
        # Client and compose environment: nothing from the caller's MCPD_* settings.
        base = {k: v for k, v in os.environ.items() if not k.startswith("MCPD_")}
        self.client_env = base
        self.compose_env = dict(base, MCPD_IMAGE=self.image,
                                **{k: str(v) for k, v in self.ports.items()})
        if self.prometheus_image:
            self.compose_env["PROMETHEUS_IMAGE"] = self.prometheus_image

    # --- compose and docker ---

    def compose(self, *args: str, timeout: float = 180, check: bool = True
                ) -> subprocess.CompletedProcess[str]:
        cmd = self.compose_cmd + ["-p", self.project, "-f", str(self.compose_file)]
        if self.prometheus_image:
            cmd += ["--profile", "monitoring"]
        return run(cmd + list(args), env=self.compose_env, timeout=timeout, check=check)

    def labelled(self, kind: str, *extra: str) -> list[str]:
        """Ids of this project's containers, networks or volumes."""
        filters = ["--filter", f"label=com.docker.compose.project={self.project}"]
        for f in extra:
            filters += ["--filter", f"label={f}"]
        if kind == "container":
            cmd = ["docker", "ps", "-a", "-q", *filters]
        else:
            cmd = ["docker", kind, "ls", "-q", *filters]
        return run(cmd, check=True).stdout.split()

    def container(self, node: int) -> str:
        ids = self.labelled("container", f"com.docker.compose.service=node{node}")
        if len(ids) != 1:
            raise Failure(f"expected one container for node{node}, found {ids}")
        return ids[0]

    def network(self) -> str:
        ids = self.labelled("network", "com.docker.compose.network=mesh")
        if len(ids) != 1:
            raise Failure(f"expected the project network, found {ids}")
        return run(["docker", "network", "inspect", "-f", "{{.Name}}", ids[0]],
                   check=True).stdout.strip()

    def health(self, node: int) -> str:
        out = run(["docker", "inspect", "-f",
                   "{{if .State.Health}}{{.State.Health.Status}}{{else}}{{.State.Status}}{{end}}",
                   self.container(node)])
        return out.stdout.strip()

    def wait_healthy(self, nodes: tuple[int, ...] = NODES, timeout: float = 120) -> float:
        start = time.monotonic()
        wait_until(f"nodes {nodes} to be healthy", timeout,
                   lambda: all(self.health(n) == "healthy" for n in nodes), interval=0.5)
        return time.monotonic() - start

    # --- the mcpd CLI ---

    def cli(self, node: int, *args: str, stdin: str | None = None, timeout: float = 20
            ) -> tuple[bool, Any, str]:
        """Runs `mcpd -o json ARGS` against node's published port: (ok, json, stderr)."""
        endpoint = f"127.0.0.1:{self.ports[f'NODE{node}_GRPC_PORT']}"
        cmd = [self.mcpd, "--endpoint", endpoint, "-o", "json", *args]
        return self._parse(run(cmd, env=self.client_env, stdin=stdin, timeout=timeout))

    def cli_inside(self, node: int, *args: str, stdin: str | None = None,
                   timeout: float = 30) -> tuple[bool, Any, str]:
        """Runs the image's mcpd inside node's container (works while it is disconnected)."""
        cmd = ["docker", "exec", "-i", self.container(node), "/usr/local/bin/mcpd",
               "--endpoint", "127.0.0.1:7400", "-o", "json", *args]
        return self._parse(run(cmd, stdin=stdin, timeout=timeout))

    @staticmethod
    def _parse(done: subprocess.CompletedProcess[str]) -> tuple[bool, Any, str]:
        if done.returncode != 0:
            return False, None, done.stderr.strip()
        try:
            return True, json.loads(done.stdout), ""
        except json.JSONDecodeError as e:
            return False, None, f"unparsable output ({e}): {done.stdout[:200]!r}"

    def status(self, node: int, inside: bool = False) -> dict[str, Any] | None:
        ok, value, _ = (self.cli_inside if inside else self.cli)(node, "status", timeout=10)
        return value if ok else None

    def deploy(self, node: int, name: str, replicas: int, inside: bool = False
               ) -> tuple[bool, Any, str]:
        fn = self.cli_inside if inside else self.cli
        return fn(node, "deploy", "-f", "-", stdin=server_spec(name, replicas))

    def call_echo(self, node: int, text: str, inside: bool = False) -> str | None:
        """Calls echo through `node`; the error text, or None if the echo came back right."""
        fn = self.cli_inside if inside else self.cli
        ok, value, err = fn(node, "call", "echo", "echo", json.dumps({"text": text}))
        if not ok:
            return err or "failed"
        got = (value.get("result") or {}).get("content", [{}])[0].get("text")
        return None if got == text else f"echo returned {got!r}, expected {text!r}"

    def registry(self, node: int, stale: bool = False, inside: bool = False
                 ) -> dict[str, dict[str, Any]]:
        """The servers as node sees them, keyed by name (the user-visible fields)."""
        args = ["ls", "--stale"] if stale else ["ls"]
        ok, value, err = (self.cli_inside if inside else self.cli)(node, *args)
        if not ok:
            raise Failure(f"ls on node{node} failed: {err}")
        return {
            s["name"]: {k: s.get(k) for k in
                        ("create_revision", "mod_revision", "replicas", "placements", "spec")}
            for s in value["servers"]
        }

    def running(self, node: int, server: str, inside: bool = False) -> int | None:
        s = self.status(node, inside=inside)
        if s is None:
            return None
        return sum(1 for i in s["instances"] if i["server"] == server and i["state"] == "running")

    def agreed_leader(self, nodes: tuple[int, ...]) -> int | None:
        """The leader every node in `nodes` names, if they agree, it is one of them and it
        says it leads."""
        views = [self.status(n) for n in nodes]
        if any(v is None for v in views):
            return None
        leaders = {v["leader_id"] for v in views}
        if len(leaders) != 1 or None in leaders:
            return None
        leader = leaders.pop()
        if leader not in nodes:
            return None
        if next(v for v in views if v["node_id"] == leader)["role"] != "leader":
            return None
        return leader


class Load:
    """Background calls and writes while a scenario disturbs the cluster."""

    def __init__(self, cluster: Cluster, nodes: tuple[int, ...], tag: str,
                 acked: dict[str, int]) -> None:
        self.cluster = cluster
        self.nodes = nodes
        self.tag = tag
        self.acked = acked
        self.calls_ok = 0
        self.calls_failed: list[str] = []
        self.writes_refused: list[str] = []
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._calls, daemon=True),
                        threading.Thread(target=self._writes, daemon=True)]

    def __enter__(self) -> "Load":
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(timeout=60)

    def _calls(self) -> None:
        i = 0
        while not self.stop.is_set():
            node = self.nodes[i % len(self.nodes)]
            err = self.cluster.call_echo(node, f"{self.tag}-{i}")
            if err is None:
                self.calls_ok += 1
            else:
                self.calls_failed.append(f"node{node}: {err}")
            i += 1
            self.stop.wait(0.1)

    def _writes(self) -> None:
        i = 0
        while not self.stop.is_set():
            node = self.nodes[i % len(self.nodes)]
            name = f"{self.tag}-w{i}"
            ok, value, err = self.cluster.deploy(node, name, 0)
            if ok:
                self.acked[name] = value["revision"]
            else:
                self.writes_refused.append(f"node{node}: {err}")
            i += 1
            self.stop.wait(0.3)


class Driver:
    def __init__(self, cluster: Cluster) -> None:
        self.c = cluster
        # Every acknowledged write: server name -> revision it was acknowledged at.
        self.acked: dict[str, int] = {}
        self.report: list[str] = []
        self.metrics: dict[str, Any] = {"calls_ok": 0, "calls_failed": 0}

    def ok(self, line: str) -> None:
        self.report.append(f"[ok] {line}")
        log(line)

    def check(self, cond: bool, message: str) -> None:
        if not cond:
            raise Failure(message)

    def wait_leader(self, nodes: tuple[int, ...] = NODES, timeout: float = 60) -> int:
        return wait_until(f"nodes {nodes} to agree on a leader", timeout,
                          lambda: self.c.agreed_leader(nodes))

    def wait_converged(self, nodes: tuple[int, ...], timeout: float = 60
                       ) -> dict[str, dict[str, Any]]:
        """Waits until every node applied the same log and holds the same registry."""
        def same() -> dict[str, dict[str, Any]] | None:
            views = [self.c.status(n) for n in nodes]
            if any(v is None for v in views):
                return None
            if os.environ.get("FAILOVER_DEBUG"):
                log("converge: " + str([(v["role"], v["leader_id"], v["term"], v["revision"],
                                         v["last_applied_index"]) for v in views]))
            if len({(v["revision"], v["last_applied_index"]) for v in views}) != 1:
                return None
            registries = [self.c.registry(n, stale=True) for n in nodes]
            return registries[0] if all(r == registries[0] for r in registries) else None
        return wait_until(f"nodes {nodes} to converge", timeout, same)

    def wait_placed(self, nodes: tuple[int, ...], replicas: int, what: str,
                    timeout: float = 90) -> dict[int, int]:
        """Waits until the running echo instances on `nodes` add up to `replicas`."""
        def placed() -> dict[int, int] | None:
            counts = {n: self.c.running(n, "echo") for n in nodes}
            if any(v is None for v in counts.values()):
                return None
            return counts if sum(counts.values()) == replicas else None
        return wait_until(what, timeout, placed, interval=0.5)

    def check_no_loss(self, node: int) -> int:
        registry = self.c.registry(node)
        lost = sorted(n for n in self.acked if n not in registry)
        self.metrics["data_lost"] = len(lost)
        self.check(not lost, f"acknowledged writes missing from the registry: {lost}")
        return len(registry)

    # --- scenarios ---

    def up(self) -> None:
        start = time.monotonic()
        self.c.compose("up", "-d", timeout=300)
        self.c.wait_healthy()
        leader = self.wait_leader()
        elapsed = time.monotonic() - start
        ok, value, err = self.c.deploy(1, "echo", 3)
        self.check(ok, f"deploy through node1 failed: {err}")
        self.acked["echo"] = value["revision"]
        counts = self.wait_placed(NODES, 3, "one running echo instance per node")
        self.check(all(v == 1 for v in counts.values()), f"replicas not spread: {counts}")
        for node in (2, 3):
            wait_until(f"echo to answer through node{node}", 30,
                       lambda: self.c.call_echo(node, f"hello-{node}") is None)
        self.ok(f"1 up: 3 nodes healthy, leader node{leader} in {elapsed:.1f} s; "
                f"echo (3 replicas {counts}) deployed via node1, called via node2 and node3")

    def kill_leader(self) -> None:
        old = self.wait_leader()
        survivors = tuple(n for n in NODES if n != old)
        with Load(self.c, survivors, "kill", self.acked) as load:
            time.sleep(1.0)  # some traffic before the kill, for comparison
            killed_at = time.monotonic()
            run(["docker", "kill", self.c.container(old)], check=True)
            new = wait_until("a new leader among the survivors", 30,
                             lambda: self.c.agreed_leader(survivors), interval=0.1)
            to_leader = time.monotonic() - killed_at
            self.check(new != old, f"survivors still name node{old}")
            counts = self.wait_placed(survivors, 3, "echo re-placed on the survivors")
            replaced = time.monotonic() - killed_at
            time.sleep(1.0)
        self.metrics["time_to_leader_s"] = round(to_leader, 2)
        self.metrics["calls_ok"] += load.calls_ok
        self.metrics["calls_failed"] += len(load.calls_failed)
        self.check(to_leader <= LEADER_DEADLINE_S,
                   f"new leader after {to_leader:.1f} s (limit {LEADER_DEADLINE_S:.0f} s)")
        self.check(not load.calls_failed,
                   f"{len(load.calls_failed)} calls failed: {load.calls_failed[:3]}")
        self.check(load.calls_ok > 0, "no call ran during the failover")
        placements = self.c.registry(new)["echo"]["placements"]
        self.check(len(placements) == 3 and old not in placements.values(),
                   f"echo placements still on node{old}: {placements}")

        started = time.monotonic()
        self.c.compose("start", f"node{old}")
        self.c.wait_healthy((old,))
        self.wait_converged(NODES)
        caught_up = time.monotonic() - started
        back = self.wait_placed(NODES, 3, "three echo instances after the return")
        self.check(back[old] == 0, f"node{old} runs moved replicas again: {back}")
        self.check(self.c.call_echo(old, "back") is None, f"call through node{old} failed")
        self.check_no_loss(new)
        self.ok(f"2 leader kill: node{old} killed, new leader node{new} after {to_leader:.2f} s; "
                f"calls {load.calls_ok} ok / {len(load.calls_failed)} failed; writes "
                f"{sum(1 for n in self.acked if n.startswith('kill-'))} acked / "
                f"{len(load.writes_refused)} refused; replicas re-placed {counts} after "
                f"{replaced:.1f} s; node{old} back and caught up in {caught_up:.1f} s")

    def partition(self) -> None:
        leader = self.wait_leader()
        followers = [n for n in NODES if n != leader]
        hosting = [n for n in followers if (self.c.running(n, "echo") or 0) > 0]
        self.check(bool(hosting), f"no follower hosts an echo instance ({followers})")
        victim = hosting[0]
        majority = tuple(n for n in NODES if n != victim)
        net = self.c.network()
        box = self.c.container(victim)
        run(["docker", "network", "disconnect", net, box], check=True)
        try:
            # The majority keeps accepting writes.
            wrote = []
            for i in range(5):
                node = majority[i % 2]
                name = f"part-w{i}"
                ok, value, err = wait_until(
                    f"write {name} through node{node}", 15,
                    lambda: (r := self.c.deploy(node, name, 0))[0] and r)
                self.acked[name] = value["revision"]
                wrote.append(name)
            # The isolated node refuses writes, clearly.
            asked = time.monotonic()
            ok, _, refusal = self.c.deploy(victim, "part-isolated", 0, inside=True)
            refused_in = time.monotonic() - asked
            self.check(not ok, f"isolated node{victim} accepted a write")
            self.check(bool(CLEAR_REFUSAL.search(refusal)),
                       f"isolated node{victim} refused with an unclear error: {refusal!r}")
            # ...and keeps serving calls for what it hosts, also once the majority has
            # re-placed its instance (after the node grace period).
            calls = 0
            deadline = time.monotonic() + 8
            while time.monotonic() < deadline:
                err = self.c.call_echo(victim, f"isolated-{calls}", inside=True)
                self.check(err is None, f"call on isolated node{victim} failed: {err}")
                calls += 1
                time.sleep(0.2)
            stale = self.c.registry(victim, stale=True, inside=True)
            self.check(not any(n in stale for n in wrote),
                       f"isolated node{victim} saw majority writes: the partition did not hold")
            self.metrics["calls_ok"] += calls
        finally:
            run(["docker", "network", "connect", "--alias", f"node{victim}", net, box],
                check=True)
        healed_at = time.monotonic()
        self.c.wait_healthy((victim,))
        healthy = time.monotonic() - healed_at
        registry = self.wait_converged(NODES)
        healed = time.monotonic() - healed_at
        self.check(all(n in registry for n in wrote), "majority writes missing after healing")
        self.check("part-isolated" not in registry, "the refused write was applied after all")
        placed = self.wait_placed(NODES, 3, "three echo instances after healing")
        self.check_no_loss(victim)
        self.ok(f"3 partition: node{victim} isolated; majority took {len(wrote)}/{len(wrote)} "
                f"writes; isolated node refused in {refused_in:.1f} s "
                f"({refusal.splitlines()[-1][:120]}) and served "
                f"{calls} calls; healthy again after {healthy:.1f} s, converged after {healed:.1f} s, registries identical, echo {placed}")

    def isolate_leader(self) -> None:
        old = self.wait_leader()
        majority = tuple(n for n in NODES if n != old)
        net = self.c.network()
        box = self.c.container(old)
        run(["docker", "network", "disconnect", net, box], check=True)
        isolated_at = time.monotonic()
        # Writes sent to the isolated leader, concurrently (each waits out the node's write
        # timeout), while the majority elects a new leader and takes its own writes.
        old_side: dict[str, tuple[bool, str]] = {}

        def write_old(i: int) -> None:
            try:
                ok, _, err = self.c.deploy(old, f"iso-old-w{i}", 0, inside=True)
            except Failure as e:
                ok, err = False, str(e)
            old_side[f"iso-old-w{i}"] = (ok, err)

        writers = [threading.Thread(target=write_old, args=(i,), daemon=True) for i in range(3)]
        try:
            for t in writers:
                t.start()
            new = wait_until("a new leader in the majority", 30,
                             lambda: self.c.agreed_leader(majority), interval=0.1)
            elected = time.monotonic() - isolated_at
            wrote = []
            for i in range(4):
                node = majority[i % 2]
                name = f"iso-maj-w{i}"
                _, value, _ = wait_until(f"write {name} through node{node}", 15,
                                         lambda: (r := self.c.deploy(node, name, 0))[0] and r)
                self.acked[name] = value["revision"]
                wrote.append(name)
            for t in writers:
                t.join(timeout=60)
        finally:
            run(["docker", "network", "connect", "--alias", f"node{old}", net, box], check=True)
        acked_old = sorted(n for n, (ok, _) in old_side.items() if ok)
        self.check(len(old_side) == 3, f"writes to the isolated leader never returned: {old_side}")
        self.check(not acked_old,
                   f"the isolated old leader node{old} acknowledged writes: {acked_old}")
        refusals = [err for _, err in old_side.values()]
        self.check(all(CLEAR_REFUSAL.search(e) for e in refusals),
                   f"the isolated old leader refused unclearly: {refusals}")
        self.c.wait_healthy((old,))
        registry = self.wait_converged(NODES)
        healed = time.monotonic() - isolated_at
        applied_old = sorted(n for n in old_side if n in registry)
        self.check(not applied_old,
                   f"writes sent to the isolated leader exist after healing: {applied_old}")
        self.check(all(n in registry for n in wrote), "majority writes missing after healing")
        self.check_no_loss(old)
        self.ok(f"4 leader isolation: node{old} (leader) disconnected; node{new} elected by the "
                f"majority after {elected:.1f} s, which took {len(wrote)}/{len(wrote)} writes; "
                f"the old leader acknowledged 0/{len(old_side)} writes "
                f"({refusals[0].splitlines()[-1][:100] if refusals else '-'}), none exists after "
                f"healing; converged {healed:.1f} s after the isolation")

    def restart(self) -> None:
        leader = self.wait_leader()
        before = self.c.registry(leader)
        self.c.compose("down", timeout=120)
        self.check(not self.c.labelled("container"), "containers left after down")
        self.check(len(self.c.labelled("volume")) >= 3, "volumes gone after down")
        self.c.compose("up", "-d", timeout=300)
        self.c.wait_healthy()
        leader = self.wait_leader()
        after = self.c.registry(leader)
        strip = lambda r: {k: {f: v for f, v in s.items() if f != "placements"}
                           for k, s in r.items()}
        self.check(strip(after) == strip(before),
                   f"registry changed across down/up: {sorted(set(before) ^ set(after))}")
        for node in NODES:
            wait_until(f"echo through node{node} after restart", 60,
                       lambda: self.c.call_echo(node, "again") is None, interval=0.5)
        servers = self.check_no_loss(leader)
        self.ok(f"5 down/up: {servers} servers intact (revisions unchanged), "
                f"echo answers on every node")

    def teardown(self) -> None:
        self.c.compose("down", "-v", "--remove-orphans", timeout=120)
        left = {k: self.c.labelled(k) for k in ("container", "network", "volume")}
        self.check(not any(left.values()), f"left behind: {left}")
        self.ok("6 teardown: no container, network or volume left")

    def prometheus(self) -> None:
        port = self.c.ports["PROMETHEUS_PORT"]
        url = f"http://127.0.0.1:{port}/api/v1/targets"

        def all_up() -> bool:
            import urllib.request
            try:
                with urllib.request.urlopen(url, timeout=3) as r:
                    targets = json.load(r)["data"]["activeTargets"]
            except OSError:
                return False
            return len(targets) == 3 and all(t["health"] == "up" for t in targets)
        wait_until("Prometheus to scrape the three nodes", 60, all_up, interval=1)
        self.ok("prometheus: scrapes node1..3 /metrics, all up")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mcpd", default=str(REPO / "target/release/mcpd"),
                        help="host mcpd binary used as the client")
    parser.add_argument("--project", default=f"mcpdtest{uuid.uuid4().hex[:8]}",
                        help="compose project name (default: a unique one)")
    parser.add_argument("--image", default=os.environ.get("MCPD_IMAGE", "mcp-rust/mcpd:local"))
    parser.add_argument("--prometheus-image", default=os.environ.get("PROMETHEUS_IMAGE"),
                        help="also run the monitoring profile with this Prometheus image")
    parser.add_argument("--keep", action="store_true", help="leave the cluster running")
    args = parser.parse_args()

    cluster = Cluster(project=args.project, compose_file=REPO / "docker-compose.yml",
                      mcpd=args.mcpd, image=args.image, prometheus_image=args.prometheus_image)
    driver = Driver(cluster)
    log(f"project {args.project}, compose: {' '.join(cluster.compose_cmd)}, image {args.image}")
    failure: str | None = None
    started = time.monotonic()
    steps = [driver.up, driver.kill_leader, driver.partition, driver.isolate_leader,
             driver.restart]
    if args.prometheus_image:
        steps.insert(1, driver.prometheus)
    try:
        for step in steps:
            step()
    except Failure as e:
        failure = f"{step.__name__}: {e}"
    except Exception as e:  # noqa: BLE001 - report any crash of the driver as a failure
        failure = f"{step.__name__}: driver error {type(e).__name__}: {e}"
    if failure:
        log(f"FAILED {failure}")
        # The nodes' own log lines (openraft's chatter left out), for the diagnosis.
        logs = cluster.compose("logs", "--no-color", "--tail", "300", check=False, timeout=60)
        lines = [l for l in logs.stdout.splitlines() if "openraft::" not in l]
        print("\n".join(lines[-80:]), flush=True)
    if not args.keep:
        try:
            driver.teardown()
        except Failure as e:
            failure = failure or f"teardown: {e}"
            log(f"FAILED teardown: {e}")

    m = driver.metrics
    print("\n== compose failover report ==")
    for line in driver.report:
        print(line)
    print(f"time to new leader: {m.get('time_to_leader_s', '-')} s | calls: {m['calls_ok']} ok, "
          f"{m['calls_failed']} failed | acknowledged writes: {len(driver.acked)}, "
          f"data lost: {m.get('data_lost', '-')} | {time.monotonic() - started:.0f} s")
    print(f"result: {'FAIL ' + failure if failure else 'PASS'}", flush=True)
    return 1 if failure else 0


if __name__ == "__main__":
    sys.exit(main())
