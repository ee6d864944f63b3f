"""The scripts in examples/ run as documented."""

from __future__ import annotations

import json
import subprocess
import sys

from conftest import REPO, wait_for


def run(*args: str, timeout: float = 120) -> str:
    out = subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=timeout, cwd=REPO)
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout


def test_quickstart():
    out = run("examples/quickstart.py")
    assert "Deployed: time" in out
    assert "get_current_time" in out
    assert "Healthy servers: 1/1" in out


def test_circuit_breaker_example():
    out = run("examples/circuit_breaker.py")
    assert "circuit breaker open" in out
    assert "after recovery: gpt, claude" in out
    assert "slow server: timeout" in out


def test_testing_example():
    out = run("-m", "pytest", "-q", "-p", "no:cacheprovider", "examples/test_with_mocks.py")
    assert "1 passed" in out


def _leader_id(mcpd: str, node: str):
    out = subprocess.run([mcpd, "--endpoint", node, "-o", "json", "status"], capture_output=True, text=True, timeout=10)
    return json.loads(out.stdout).get("leader_id") if out.returncode == 0 else None


def test_distributed_client_example(cluster3):
    # The example is run against a cluster that is up, as a user would: one that has
    # elected its leader (it prints the leader first thing).
    wait_for("a leader", 30, lambda: _leader_id(cluster3.mcpd, cluster3.nodes[0]))
    out = run("examples/distributed_client.py", "--rounds=2", *cluster3.nodes)
    assert "Leader: 127.0.0.1:" in out
    assert out.count("[0] ") == 1 and "[1] " in out
    assert "Error" not in out
