#!/usr/bin/env python
"""Distributed Map benchmark (issue 12): a Map Run of JSONL items from S3 vs. Celery chunks.

    python benchmarks/dmap.py [--items 100000] [--quick] [--repeat 1] [--concurrency 2]

Starts a moto S3 server (its own process, dummy credentials, as ``tests/aws.local_s3``),
an embedded Redis, one Celery worker (prefork, ``--concurrency`` processes) serving both
sides and ``orchestrator beat`` (which runs the Map Run's advances and reads the items).
Uploads ``--items`` JSON lines to S3, then, alternating sides on each repeat:

* orchestrator: ``start_workflow`` of a Distributed Map (STANDARD children) whose
  ``ItemReader`` reads the JSONL object, ``ItemBatcher`` of 100 items, each child one Task
  (``dmap_batch``: the no-op per item of its batch) — until the parent's result;
* Celery: ``bench.dmap_item.chunks(items, 100).group()`` — the same no-op per item, 100
  items per message — until the last chunk's last item has counted its chunk (one INCR per
  chunk; the counter reaching the chunk count marks the end, as ``bench_tasks.raw_join``).

Prints a table; the last line of stdout is one JSON object: ``dmap_items_per_s``,
``dmap_ratio`` (orchestrator time / Celery time, best of the repeats each) and
``redis_bytes_per_item_parent`` (MEMORY USAGE of the parent's keys after the run / items),
and per run the CPU seconds of each process (worker, beat, Redis, S3, this one) and the S3
GETs served: where the time goes. ``--profile DIR`` py-spies the worker and beat
(summarise with ``benchmarks/profile_summary.py DIR/*.txt``).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

if __name__ == "__main__":
    try:
        import celery  # noqa: F401 - only checks that the project's dependencies are here
    except ImportError:
        _VENV_PYTHON = ROOT / ".venv" / "bin" / "python"
        if _VENV_PYTHON.exists():
            os.execv(str(_VENV_PYTHON), [str(_VENV_PYTHON), __file__, *sys.argv[1:]])
        sys.exit("benchmarks/dmap.py needs the project installed (.venv)")
    # The worker imports this file as ``benchmarks.dmap`` (its tasks): so does this process,
    # so that the activity below is registered once, under that one module.
    sys.modules["benchmarks.dmap"] = sys.modules["__main__"]

from benchmarks.common import celery_worker_command  # noqa: E402
from orchestrator import activity  # noqa: E402
from orchestrator.engine.celery_app import app  # noqa: E402

PREFIX = "benchdmap"
QUEUE = "benchdmap"
BUCKET = "dmap-bench"
BATCH = 100


def _item_work(value: Any) -> Any:
    """The no-op work done per item on both sides."""
    return value


@activity("dmap_batch")
def dmap_batch(batch: dict[str, Any]) -> int:
    """A child's Task: the no-op per item of its batch; returns the item count (a small
    result, so the parent's assembled output stays far below the payload quota)."""
    items = batch["Items"]
    for item in items:
        _item_work(item)
    return len(items)


_client: tuple[int, Any] | None = None


def _redis() -> Any:
    # One client per process (prefork children must not share the parent's socket).
    global _client
    if _client is None or _client[0] != os.getpid():
        from orchestrator.config import get_settings
        from orchestrator.engine.store import redis_client

        _client = (os.getpid(), redis_client(get_settings().redis_url or ""))
    return _client[1]


@app.task(name="bench.dmap_item")
def dmap_item(
    value: Any, counter_key: str | None = None, total: int = 0, done_key: str | None = None
) -> Any:
    """Raw Celery's per-item no-op; the last item of a chunk also counts its chunk."""
    result = _item_work(value)
    if counter_key is not None and done_key is not None:
        client = _redis()
        if client.incr(counter_key) >= total:
            client.hset(done_key, "status", "SUCCEEDED")
    return result


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def definition(key: str, max_concurrency: int) -> dict[str, Any]:
    """The Distributed Map: JSONL items from S3, batches of 100, one Task per child."""
    return {
        "Comment": "dmap benchmark",
        "StartAt": "M",
        "States": {
            "M": {
                "Type": "Map",
                "ItemReader": {
                    "Resource": "arn:aws:states:::s3:getObject",
                    "ReaderConfig": {"InputType": "JSONL"},
                    "Parameters": {"Bucket": BUCKET, "Key": key},
                },
                "ItemBatcher": {"MaxItemsPerBatch": BATCH},
                "MaxConcurrency": max_concurrency,
                "ItemProcessor": {
                    "ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"},
                    "StartAt": "T",
                    "States": {"T": {"Type": "Task", "Resource": "dmap_batch", "End": True}},
                },
                "End": True,
            }
        },
    }


class Services:
    """moto S3, the embedded Redis, the worker and beat."""

    def __init__(self, concurrency: int, logdir: Path) -> None:
        self.concurrency = concurrency
        self.logdir = logdir
        self.redis: Any = None
        self.s3_server: Any = None
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self) -> dict[str, str]:
        from orchestrator.engine.embedded import EmbeddedRedis

        # moto's server in a process of its own, so that its CPU is counted apart (S3 is
        # remote in production: what it costs here is the benchmark's, not the engine's).
        port = _free_port()
        self.s3_server = subprocess.Popen(
            [str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
            start_new_session=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},  # its request log counts the GETs
            stdout=open(self.logdir / "s3.log", "wb"),
            stderr=subprocess.STDOUT,
        )
        deadline = time.time() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.time() > deadline:
                    raise
                time.sleep(0.1)
        self.redis = EmbeddedRedis().start()
        settings = {
            "REDIS_URL": self.redis.url,
            "ORCHESTRATOR_TASK_MODULES": "benchmarks.dmap",
            "ORCHESTRATOR_KEY_PREFIX": PREFIX,
            "ORCHESTRATOR_QUEUE": QUEUE,
            # No AWS is touched: dummy credentials, the shared config hidden.
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_CONFIG_FILE": "/dev/null",
            "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
            "AWS_ENDPOINT_URL_S3": f"http://127.0.0.1:{port}",
        }
        for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL"):
            os.environ.pop(name, None)
        os.environ.update(settings)
        env = dict(os.environ)
        env["PYTHONPATH"] = str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")
        # This process imported orchestrator (and so configured Celery) before REDIS_URL
        # was set: re-read the settings and point the app at the embedded server.
        from orchestrator import config
        from orchestrator.engine.celery_app import reconfigure
        from orchestrator.engine.store import reset_stores

        config.configure(None)
        reset_stores()
        reconfigure()
        worker = celery_worker_command(QUEUE, self.concurrency, f"dmap-{uuid.uuid4().hex[:6]}@%h")
        beat = [str(Path(sys.executable).parent / "orchestrator"), "beat", "-l", "WARNING"]
        for name, cmd in (("worker", worker), ("beat", beat)):
            self.procs.append(
                subprocess.Popen(
                    cmd,
                    cwd=self.logdir,  # beat writes its schedule file in its directory
                    env=env,
                    start_new_session=True,
                    stdout=open(self.logdir / f"{name}.log", "wb"),
                    stderr=subprocess.STDOUT,
                )
            )
        return settings

    def cpu_seconds(self) -> dict[str, float]:
        """CPU time (user + system) so far of each side's processes, children included:
        where a run's time goes (``bench`` is this process, the client)."""
        import psutil

        def tree(pid: int | None, children: bool = True) -> float:
            if pid is None:
                return 0.0
            total = 0.0
            try:
                main = psutil.Process(pid)
                for proc in [main, *(main.children(recursive=True) if children else [])]:
                    times = proc.cpu_times()
                    total += times.user + times.system
            except psutil.NoSuchProcess:
                pass
            return total

        return {
            "worker": tree(self.procs[0].pid),
            "beat": tree(self.procs[1].pid),
            "redis": tree(self.redis.pid),
            "s3": tree(self.s3_server.pid),
            "bench": tree(os.getpid(), children=False),
        }

    def s3_gets(self) -> int:
        """S3 GET requests served so far (moto's request log)."""
        try:
            return (self.logdir / "s3.log").read_text(errors="replace").count("GET /" + BUCKET)
        except FileNotFoundError:
            return 0

    def spy(self, outdir: Path) -> list[subprocess.Popen[bytes]]:
        """py-spy (collapsed stacks, idle excluded) on the worker and beat, with their
        child processes, until interrupted."""
        outdir.mkdir(parents=True, exist_ok=True)
        spies = []
        for name, proc in zip(("worker", "beat"), self.procs, strict=True):
            spies.append(
                subprocess.Popen(
                    [
                        "py-spy",
                        "record",
                        "--subprocesses",
                        "--format",
                        "raw",
                        "--rate",
                        "200",
                        "-p",
                        str(proc.pid),
                        "-o",
                        str(outdir / f"{name}.txt"),
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=open(outdir / f"{name}.spy.log", "wb"),
                )
            )
        time.sleep(1.0)  # py-spy attaches
        return spies

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, 9)
                proc.wait()
        if self.redis is not None:
            self.redis.stop()
        if self.s3_server is not None:
            self.s3_server.terminate()
            self.s3_server.wait(timeout=15)


def upload(n: int) -> tuple[str, list[dict[str, Any]]]:
    """Put ``n`` JSON lines in S3; return the key and the items."""
    import boto3

    items = [{"i": i, "name": f"item-{i}"} for i in range(n)]
    s3 = boto3.client("s3")
    try:
        s3.create_bucket(Bucket=BUCKET)
    except s3.exceptions.BucketAlreadyOwnedByYou:
        pass
    key = f"in-{n}.jsonl"
    body = "\n".join(json.dumps(item) for item in items) + "\n"
    s3.put_object(Bucket=BUCKET, Key=key, Body=body.encode())
    return key, items


def run_orchestrator(key: str, n: int, max_concurrency: int, timeout: float) -> tuple[float, str]:
    """Seconds from start_workflow to the parent's result; the parent's id."""
    from orchestrator import start_workflow

    t0 = time.perf_counter()
    handle = start_workflow(definition(key, max_concurrency), {})
    result = handle.result(timeout)
    elapsed = time.perf_counter() - t0
    if result.status != "SUCCEEDED":
        raise RuntimeError(f"the Map ended {result.status}: {result}")
    expected = [min(BATCH, n - first) for first in range(0, n, BATCH)]
    if result.output != expected:
        raise RuntimeError("the Map's output is not one count per batch")
    return elapsed, handle.execution_id


def timeline(parent: str) -> dict[str, float]:
    """When things happened in the parent's Map Run, in seconds from the parent's start
    (read from the records after the run, 500 children a round trip): the first and last
    child's start, the median child's run (start to stop), the last child's stop, and the
    parent's stop; where the time goes between start_workflow and the result."""
    from orchestrator.engine.maprun import READ_PAGE, child_id
    from orchestrator.engine.store import get_store

    store = get_store()
    (record,) = store.execution_records([parent], ("start", "stop"))
    origin = float(record["start"] or 0)
    (key,) = store.map_run_containers(parent)
    mr = store.map_run(parent, key)
    count, run = int(mr.get("next") or 0), mr["run"]
    starts: list[float] = []
    spans: list[float] = []
    stops: list[float] = []
    for first in range(0, count, READ_PAGE):
        ids = [child_id(parent, run, i) for i in range(first, min(count, first + READ_PAGE))]
        for child in store.execution_records(ids, ("start", "stop")):
            start, stop = float(child["start"] or 0), float(child["stop"] or 0)
            starts.append(start - origin)
            stops.append(stop - origin)
            spans.append(stop - start)
    spans.sort()
    return {
        "first_child_start": round(min(starts), 3),
        "last_child_start": round(max(starts), 3),
        "child_run_median": round(spans[len(spans) // 2], 3),
        "child_run_p90": round(spans[len(spans) * 9 // 10], 3),
        "last_child_stop": round(max(stops), 3),
        "parent_stop": round(float(record["stop"] or 0) - origin, 3),
    }


def run_celery(items: list[dict[str, Any]], timeout: float) -> float:
    """Seconds from publishing the chunks to the last chunk counted."""
    client = _redis()
    run = uuid.uuid4().hex[:8]
    counter, done = f"{PREFIX}:raw:{run}:n", f"{PREFIX}:raw:{run}:done"
    chunks = -(-len(items) // BATCH)
    # The last item of every chunk counts its chunk (the items of a chunk run in order).
    args = [
        (item, counter, chunks, done) if i % BATCH == BATCH - 1 or i == len(items) - 1 else (item,)
        for i, item in enumerate(items)
    ]
    t0 = time.perf_counter()
    dmap_item.chunks(args, BATCH).group().apply_async()
    deadline = t0 + timeout
    while client.hget(done, "status") != "SUCCEEDED":
        if time.perf_counter() > deadline:
            raise TimeoutError(f"Celery chunks did not end within {timeout} s")
        time.sleep(0.02)
    elapsed = time.perf_counter() - t0
    client.delete(counter, done)
    return elapsed


def parent_bytes(execution_id: str) -> int:
    """MEMORY USAGE summed over the parent's keys (not its children's)."""
    client = _redis()
    total = 0
    for key in client.scan_iter(match=f"{PREFIX}:x:{{{execution_id}}}*", count=1000):
        total += client.memory_usage(key, samples=0) or 0
    return total


def wait_ready(timeout: float = 60.0) -> None:
    """Until the worker answers a ping (beat is proven by the warm-up Map)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if app.control.ping(timeout=1.0):
            return
    raise TimeoutError("the worker did not start")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--quick", action="store_true", help="10,000 items")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each side")
    parser.add_argument("--concurrency", type=int, default=2, help="worker processes")
    parser.add_argument("--max-concurrency", type=int, default=1000, help="the Map's")
    parser.add_argument("--timeout", type=float, default=900.0)
    parser.add_argument(
        "--profile", metavar="DIR", help="py-spy the worker and beat during the first Map run"
    )
    args = parser.parse_args()
    n = 10_000 if args.quick else args.items
    load = os.getloadavg()
    log(f"load before: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    with tempfile.TemporaryDirectory(prefix="dmap-bench-") as tmp:
        services = Services(args.concurrency, Path(tmp))
        try:
            services.start()
            wait_ready()
            key, items = upload(n)
            log(f"uploaded {n} items to s3://{BUCKET}/{key}")
            # Warm-up: both sides once on a small input (imports, connections, pools).
            small_key, small = upload(BATCH * 5)
            run_orchestrator(small_key, len(small), args.max_concurrency, 120)
            run_celery(small, 120)
            orch: list[float] = []
            raw: list[float] = []
            parent = ""
            cpu: dict[str, list[dict[str, float]]] = {"orch": [], "celery": []}
            timelines: list[dict[str, float]] = []
            for r in range(args.repeat):
                sides = ["orch", "celery"] if r % 2 == 0 else ["celery", "orch"]
                for side in sides:
                    spies = []
                    if args.profile and side == "orch" and r == 0:
                        spies = services.spy(Path(args.profile))
                    before = services.cpu_seconds()
                    gets = services.s3_gets()
                    if side == "orch":
                        elapsed, parent = run_orchestrator(
                            key, n, args.max_concurrency, args.timeout
                        )
                        orch.append(elapsed)
                        timelines.append(timeline(parent))
                    else:
                        raw.append(run_celery(items, args.timeout))
                    after = services.cpu_seconds()
                    for spy in spies:
                        spy.send_signal(2)
                        spy.wait(timeout=60)
                    used = {k: round(after[k] - before[k], 2) for k in after}
                    used["s3_gets"] = services.s3_gets() - gets
                    cpu[side].append(used)
                    log(
                        f"run {r + 1} {side}: {(orch if side == 'orch' else raw)[-1]:.2f} s, "
                        f"CPU s (and S3 GETs) {used}, load {os.getloadavg()[0]:.2f}"
                        + (f", timeline (s) {timelines[-1]}" if side == "orch" else "")
                    )
            memory = parent_bytes(parent)
        finally:
            services.stop()
    best_orch, best_raw = min(orch), min(raw)
    figures = {
        "items": n,
        "batch": BATCH,
        "worker_processes": args.concurrency,
        "dmap_seconds": round(best_orch, 3),
        "celery_chunks_seconds": round(best_raw, 3),
        "dmap_items_per_s": round(n / best_orch, 1),
        "celery_items_per_s": round(n / best_raw, 1),
        "dmap_ratio": round(best_orch / best_raw, 3),
        "redis_bytes_per_item_parent": round(memory / n, 3),
        "runs_orch": [round(t, 3) for t in orch],
        "runs_celery": [round(t, 3) for t in raw],
        "cpu_s_orch": cpu["orch"],
        "cpu_s_celery": cpu["celery"],
        "timeline_orch": timelines,
        "loadavg_before": [round(x, 2) for x in load],
        "loadavg_after": [round(x, 2) for x in os.getloadavg()],
    }
    print(f"{'figure':32} {'value':>12}  goal")
    print(f"{'dmap time (s)':32} {best_orch:12.2f}")
    print(f"{'celery chunks time (s)':32} {best_raw:12.2f}")
    print(f"{'dmap_items_per_s':32} {n / best_orch:12.0f}")
    print(f"{'celery_items_per_s':32} {n / best_raw:12.0f}")
    ratio = best_orch / best_raw
    print(f"{'dmap_ratio':32} {ratio:12.2f}  <= 1.5 {'PASS' if ratio <= 1.5 else 'FAIL'}")
    per_item = memory / n
    print(
        f"{'parent Redis bytes / item':32} {per_item:12.1f}  <= 200 "
        f"{'PASS' if per_item <= 200 else 'FAIL'}"
    )
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
