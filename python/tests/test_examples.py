"""The scripts in examples/ run as documented."""

from __future__ import annotations

import subprocess
import sys

from conftest import REPO


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


def test_distributed_client_example(cluster3):
    out = run("examples/distributed_client.py", "--rounds=2", *cluster3.nodes)
    assert "Leader: 127.0.0.1:" in out
    assert out.count("[0] ") == 1 and "[1] " in out
    assert "Error" not in out
