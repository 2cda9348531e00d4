#!/usr/bin/env python
"""The quick benchmark with the store on a Redis Cluster, beside one Redis (issue 18).

    python benchmarks/cluster.py [--quick] [--json] [--only STEPS] [--concurrency 2]
                                 [--broker URL] [--partitions 6]
    ./run bench --quick --cluster                  # the same

Runs ``benchmarks/run.py`` twice, one after the other, with the same broker (RabbitMQ:
kombu has no Redis Cluster transport, and the broker stays the same on both sides) and
the same partitions: first with the store on one ``redis-server``, then on a Redis
Cluster of three masters (both started by run.py from tests/redis_servers.py, stopped at
its end). Each run measures the orchestrator against raw Celery as always; this prints
both runs' figures side by side, with the cluster's over one Redis's, and the goals
checked on the cluster's. Progress (both runs') goes to stderr; with ``--json`` the last
line of stdout is one JSON object holding both runs' objects.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
from collections import deque
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

RABBITMQ_URL = "amqp://guest:guest@127.0.0.1:5672//"
SIDES = (("redis", "one Redis"), ("cluster", "cluster"))


def _python() -> str:
    venv = ROOT / ".venv" / "bin" / "python"
    return str(venv) if venv.exists() else sys.executable


def _broker_answers(url: str) -> bool:
    """Whether something listens where an ``amqp://`` broker URL points (others: True)."""
    if not url.startswith("amqp://"):
        return True
    hostport = url.split("://", 1)[1].rsplit("@", 1)[-1].split("/", 1)[0]
    host, _, port = hostport.partition(":")
    try:
        with socket.create_connection((host or "127.0.0.1", int(port or 5672)), timeout=2):
            return True
    except OSError:
        return False


def run_side(store: str, args: argparse.Namespace) -> tuple[dict[str, Any] | None, str]:
    """Run ``benchmarks/run.py --store <store> --json ...``; return its JSON object (None
    if it ended without one) and, then, the last lines it wrote to stderr. Its stderr
    passes through as it comes."""
    command = [
        _python(),
        str(ROOT / "benchmarks" / "run.py"),
        "--json",
        "--store",
        store,
        "--broker",
        args.broker,
        "--partitions",
        str(args.partitions),
        "--concurrency",
        str(args.concurrency),
        *(["--quick"] if args.quick else []),
        *(["--only", args.only] if args.only else []),
    ]
    print(f"==> {store}: {' '.join(command[1:])}", file=sys.stderr, flush=True)
    tail: deque[str] = deque(maxlen=40)
    with subprocess.Popen(
        command,
        cwd=ROOT,
        env=os.environ.copy(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as proc:
        assert proc.stderr is not None and proc.stdout is not None
        for line in proc.stderr:
            sys.stderr.write(line)
            sys.stderr.flush()
            tail.append(line)
        stdout = proc.stdout.read()
        proc.wait()
    lines = stdout.strip().splitlines()
    result = None
    if lines:
        try:
            result = json.loads(lines[-1])
        except json.JSONDecodeError:
            result = None
    if result is None:
        return None, f"exit {proc.returncode}\n{''.join(tail)}"
    return result, ""


def report(results: dict[str, dict[str, Any] | None]) -> int:
    """Print the figures side by side; return how many goals the cluster's run missed."""
    from benchmarks.run import GOALS

    one = (results.get("redis") or {}).get("figures", {})
    cluster = (results.get("cluster") or {}).get("figures", {})
    rows = []
    missed = 0
    for name, goal, check in GOALS:
        a, b = one.get(name), cluster.get(name)
        ratio = "-"
        if isinstance(a, int | float) and isinstance(b, int | float) and a:
            ratio = f"{b / a:.3f}"
        verdict = ""
        if check is not None:
            if b is None:
                verdict = "MISSING"
                missed += 1
            elif check(b):
                verdict = "pass"
            else:
                verdict = "FAIL"
                missed += 1
        shown = ["-" if value is None else str(value) for value in (a, b)]
        rows.append((name, *shown, ratio, goal, verdict))
    header = ("figure", "one Redis", "cluster", "cluster/one", "goal", "cluster result")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    print("  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)))
    print("  ".join("-" * w for w in widths))
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)))
    for store, label in SIDES:
        result = results.get(store)
        if result is None:
            continue
        machine = result.get("machine", {})
        print(
            f"\n{label}: store {result.get('store')}, broker {result.get('broker')}, "
            f"{result.get('partitions')} partitions, Redis {machine.get('redis')}, "
            f"{machine.get('cores')} cores; {'quick' if result.get('quick') else 'full'} run "
            f"in {result.get('elapsed_s')} s"
        )
        for step, note in result.get("notes", {}).items():
            print(f"  note [{step}]: {note}")
    return missed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="run.py's quick run")
    parser.add_argument("--json", action="store_true", help="last line: one JSON object")
    parser.add_argument("--only", default="", help="run.py's --only (comma-separated steps)")
    parser.add_argument("--concurrency", type=int, default=2, help="worker processes")
    parser.add_argument("--broker", default=RABBITMQ_URL, help="Celery's broker, both runs")
    parser.add_argument("--partitions", type=int, default=6, help="both runs' partitions")
    args = parser.parse_args(argv)
    if not _broker_answers(args.broker):
        parser.error(f"no broker answers at {args.broker.rsplit('@', 1)[-1]} (RabbitMQ)")
    results: dict[str, dict[str, Any] | None] = {}
    failures: dict[str, str] = {}
    for store, _ in SIDES:
        results[store], failure = run_side(store, args)
        if failure:
            failures[store] = failure
    print()
    missed = report(results)
    for store, failure in failures.items():
        print(f"\nthe {dict(SIDES)[store]} run gave no figures ({failure.splitlines()[0]}):")
        print("\n".join("  " + line for line in failure.splitlines()[1:][-15:]))
    if args.json:
        print(json.dumps({"runs": results, "cluster_goals_missed": missed}, sort_keys=True))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
