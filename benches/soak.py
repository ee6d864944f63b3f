#!/usr/bin/env python3
"""Soak: the nemesis suite's mixed load and faults for a long time, with every node's
memory (RSS) and open file descriptors sampled, to show leaks that short tests miss.

Runs `cargo test --release --test nemesis` with MCPD_NEMESIS_SECS (random faults of every
kind for that long), MCPD_NEMESIS_KEEP_NODE=1 (node 1 is paused and partitioned but never
killed or restarted, so its process lives through the whole run) and MCPD_NEMESIS_SAMPLES
(a CSV of secs,node,pid,rss_kb,fds every 10 s). Prints the growth of node 1 (first vs.
last five minutes, and a least-squares slope per hour), the range of every node, and
whether the history checker passed. Not part of CI.

    python3 benches/soak.py [--minutes 30] [--samples FILE] [--seed N]
"""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def slope_per_hour(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of (secs, value), per hour."""
    n = len(points)
    if n < 2:
        return 0.0
    mx = sum(p[0] for p in points) / n
    my = sum(p[1] for p in points) / n
    var = sum((p[0] - mx) ** 2 for p in points)
    if var == 0:
        return 0.0
    cov = sum((p[0] - mx) * (p[1] - my) for p in points)
    return cov / var * 3600


def summarize(path: Path, window_s: float) -> list[str]:
    rows = list(csv.DictReader(path.open()))
    lines = []
    by_node: dict[int, list[dict[str, str]]] = {}
    for r in rows:
        by_node.setdefault(int(r["node"]), []).append(r)
    for node, samples in sorted(by_node.items()):
        pids = {s["pid"] for s in samples}
        rss = [(float(s["secs"]), int(s["rss_kb"]) / 1024) for s in samples]
        fds = [(float(s["secs"]), int(s["fds"])) for s in samples]
        end = rss[-1][0]
        first = [v for t, v in rss if t <= rss[0][0] + window_s]
        last = [v for t, v in rss if t >= end - window_s]
        first_fd = [v for t, v in fds if t <= fds[0][0] + window_s]
        last_fd = [v for t, v in fds if t >= end - window_s]
        avg = lambda xs: sum(xs) / len(xs) if xs else 0.0
        if len(pids) == 1:
            lines.append(
                f"node {node} (one process, {len(samples)} samples over {end / 60:.0f} min): "
                f"RSS {avg(first):.1f} MiB in the first {window_s / 60:.0f} min -> "
                f"{avg(last):.1f} MiB in the last (max {max(v for _, v in rss):.1f}), "
                f"slope {slope_per_hour(rss):+.1f} MiB/h; fds {avg(first_fd):.0f} -> "
                f"{avg(last_fd):.0f} (max {max(v for _, v in fds)}), "
                f"slope {slope_per_hour(fds):+.1f}/h")
        else:
            lines.append(
                f"node {node} ({len(pids)} processes, restarted by the nemesis): RSS "
                f"{min(v for _, v in rss):.1f}-{max(v for _, v in rss):.1f} MiB, fds "
                f"{min(v for _, v in fds)}-{max(v for _, v in fds)}")
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=30)
    parser.add_argument("--samples", type=Path, default=None,
                        help="CSV to write (default: a temporary file)")
    parser.add_argument("--seed", default=None)
    parser.add_argument("--window-minutes", type=float, default=5,
                        help="averaging window at the start and the end")
    args = parser.parse_args()

    samples = args.samples or Path(tempfile.mkstemp(suffix=".csv", prefix="soak-")[1])
    env = dict(os.environ,
               MCPD_NEMESIS_SECS=str(int(args.minutes * 60)),
               MCPD_NEMESIS_KEEP_NODE="1",
               MCPD_NEMESIS_SAMPLES=str(samples))
    if args.seed:
        env["MCPD_NEMESIS_SEED"] = args.seed
    started = time.monotonic()
    done = subprocess.run(
        ["cargo", "test", "--release", "--test", "nemesis", "--", "--nocapture"],
        cwd=REPO, env=env, capture_output=True, text=True)
    took = time.monotonic() - started
    summary = [l for l in done.stderr.splitlines() if l.startswith("nemesis summary")]
    print(f"== soak: {args.minutes:g} min of faults and mixed load, {took / 60:.1f} min in all ==")
    print(summary[-1] if summary else "(no nemesis summary)")
    print(f"history check: {'passed' if done.returncode == 0 else 'FAILED'}")
    if done.returncode != 0:
        # Why: the panic and what follows it (the anomalies or the missing leader).
        lines = (done.stdout + "\n" + done.stderr).splitlines()
        at = next((i for i, l in enumerate(lines) if "panicked at" in l), None)
        shown = lines[at:at + 40] if at is not None else lines[-60:]
        print("\n".join(l[:300] for l in shown))
    if samples.exists() and samples.stat().st_size > 0:
        for line in summarize(samples, args.window_minutes * 60):
            print(line)
        print(f"samples: {samples}")
    return done.returncode


if __name__ == "__main__":
    sys.exit(main())
