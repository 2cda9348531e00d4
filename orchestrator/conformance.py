"""Run the ASL conformance corpus (executions recorded on real AWS Step Functions).

The corpus is kept in the repository (``tests/conformance/corpus``, Apache-2.0 data with
its NOTICE; ``$ORCHESTRATOR_CONFORMANCE_CORPUS`` points elsewhere); its README describes
the layout and the comparison rules implemented here. Usage::

    python -m orchestrator.conformance [--corpus PATH] [--category C] [--json]

prints, per category, how many cases passed, failed and were skipped (known gaps listed in
``tests/conformance/skips.py``); it exits 0 when every case ran as recorded, 1 when one
did not, and 2 when there is no corpus. ``tests/conformance/test_corpus.py`` runs the
same cases through the same runner as a parametrized pytest test.

Lambda functions of a case (``lambdas.json``) are registered as activities named after the
function. Several cases reuse a function name with different behaviours, and an activity
does not know which execution it runs for, so the behaviour table is per case and cases
with Lambda functions run one at a time (the others run concurrently).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import re
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "Case",
    "Outcome",
    "compare",
    "default_corpus",
    "load_cases",
    "load_skips",
    "main",
    "require_corpus",
    "register_lambdas",
    "run_case",
    "run_cases",
    "summarize",
]

#: Environment variable overriding the corpus location.
CORPUS_ENV = "ORCHESTRATOR_CONFORMANCE_CORPUS"
REPO_ROOT = Path(__file__).resolve().parent.parent

#: Seconds a case may run on top of its longest literal Wait.
BASE_TIMEOUT = 60.0


def default_corpus() -> Path:
    """``$ORCHESTRATOR_CONFORMANCE_CORPUS``, else the repository's ``tests/conformance/corpus``."""
    env = os.environ.get(CORPUS_ENV)
    if env:
        return Path(env)
    return REPO_ROOT / "tests" / "conformance" / "corpus"


def require_corpus(corpus: Path | None = None) -> Path:
    """The corpus folder; raises ``FileNotFoundError`` saying where it was looked for.

    Tests built on recorded cases call this at collection, so missing data fails the run
    instead of silently parametrizing nothing.
    """
    root = corpus if corpus is not None else default_corpus()
    if not (root / "cases.tsv").is_file():
        raise FileNotFoundError(
            f"no conformance corpus at {root} (expected its cases.tsv; "
            f"set {CORPUS_ENV} or restore tests/conformance/corpus)"
        )
    return root


@dataclass(frozen=True)
class Case:
    """One recorded execution."""

    category: str
    name: str
    path: Path
    definition: dict[str, Any]
    input: Any
    expected: dict[str, Any]
    lambdas: dict[str, Any] = field(default_factory=dict)
    max_wait_s: float = 0.0

    @property
    def id(self) -> str:
        """``category/case``."""
        return f"{self.category}/{self.name}"


@dataclass
class Outcome:
    """How one case went."""

    case_id: str
    status: str
    """``passed``, ``failed`` or ``skipped``."""
    detail: str = ""
    seconds: float = 0.0
    actual: dict[str, Any] | None = None

    @property
    def passed(self) -> bool:
        return self.status == "passed"


def _read_json(path: Path) -> Any:
    with path.open(encoding="utf-8") as handle:
        return json.load(handle)


def _max_waits(corpus: Path) -> dict[str, float]:
    waits: dict[str, float] = {}
    tsv = corpus / "cases.tsv"
    if not tsv.is_file():
        return waits
    lines = tsv.read_text(encoding="utf-8").splitlines()
    header = lines[0].split("\t") if lines else []
    try:
        col = header.index("max_wait_s")
    except ValueError:
        return waits
    for line in lines[1:]:
        cols = line.split("\t")
        if len(cols) > col:
            with contextlib.suppress(ValueError):
                waits[f"{cols[0]}/{cols[1]}"] = float(cols[col] or 0)
    return waits


def load_cases(corpus: Path | str | None = None, category: str | None = None) -> list[Case]:
    """Every case of the corpus (of one category), sorted by id."""
    root = Path(corpus) if corpus is not None else default_corpus()
    waits = _max_waits(root)
    cases = []
    for definition in sorted(root.glob("*/*/definition.json")):
        folder = definition.parent
        cat = folder.parent.name
        if category is not None and cat != category:
            continue
        lambdas_file = folder / "lambdas.json"
        case_id = f"{cat}/{folder.name}"
        cases.append(
            Case(
                category=cat,
                name=folder.name,
                path=folder,
                definition=_read_json(definition),
                input=_read_json(folder / "input.json"),
                expected=_read_json(folder / "expected.json"),
                lambdas=_read_json(lambdas_file) if lambdas_file.is_file() else {},
                max_wait_s=waits.get(case_id, 0.0),
            )
        )
    return cases


def load_skips() -> dict[str, str]:
    """``SKIPS`` from ``tests/conformance/skips.py`` (empty when it is not there)."""
    path = REPO_ROOT / "tests" / "conformance" / "skips.py"
    if not path.is_file():
        return {}
    spec = importlib.util.spec_from_file_location("_orchestrator_conformance_skips", path)
    if spec is None or spec.loader is None:
        return {}
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return dict(getattr(module, "SKIPS", {}))


# -- Lambda functions -------------------------------------------------------------------


class _LambdaTable:
    """The Lambda behaviours of the case that is running (one Lambda case at a time)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        """Held for the whole run of a case with Lambda functions."""
        self._specs: dict[str, Mapping[str, Any]] = {}
        self._failures = 0
        self._count_lock = threading.Lock()

    @contextlib.contextmanager
    def using(self, lambdas: Mapping[str, Any]) -> Iterator[None]:
        with self.lock:
            self._specs = dict(lambdas)
            self._failures = 0
            try:
                yield
            finally:
                self._specs = {}

    def call(self, name: str, event: Any) -> Any:
        spec = self._specs.get(name)
        if spec is None:
            raise LambdaNotInCase(f"function {name!r} is not defined by the running case")
        kind = spec.get("kind")
        if kind == "echo":
            return event
        if kind == "return":
            return spec.get("value")
        if kind == "python_fstring":
            return str(spec.get("template", "")).replace("{event}", str(event))
        if kind == "raise":
            with self._count_lock:
                self._failures += 1
                ordinal = self._failures
            cause = str(spec.get("cause", "")).replace("{n}", str(ordinal))
            error_class = type(str(spec.get("error", "Exception")), (Exception,), {})
            raise error_class(cause)
        raise LambdaNotInCase(f"function {name!r}: unknown kind {kind!r}")


class LambdaNotInCase(Exception):
    """A Lambda function was called that the running case does not define."""


_table = _LambdaTable()
_registered: set[str] = set()


def _handler(name: str) -> Callable[[Any], Any]:
    def handler(event: Any) -> Any:
        return _table.call(name, event)

    handler.__name__ = "corpus_lambda"
    return handler


def register_lambdas(cases: Iterable[Case]) -> None:
    """Register every Lambda function of ``cases`` as an activity.

    Call it before the worker starts: a running Celery worker does not learn new tasks.
    """
    from orchestrator.engine.activities import activity

    for case in cases:
        for name in case.lambdas:
            if name not in _registered:
                activity(name)(_handler(name))
                _registered.add(name)


# -- comparison -------------------------------------------------------------------------


def _same(left: Any, right: Any) -> bool:
    """JSON equality that tells booleans, integers and floats apart."""
    if isinstance(left, bool) or isinstance(right, bool):
        return type(left) is type(right) and left == right
    if isinstance(left, int | float) and isinstance(right, int | float):
        return type(left) is type(right) and left == right
    if isinstance(left, dict) and isinstance(right, dict):
        return left.keys() == right.keys() and all(_same(left[k], right[k]) for k in left)
    if isinstance(left, list) and isinstance(right, list):
        if len(left) != len(right):
            return False
        return all(_same(a, b) for a, b in zip(left, right, strict=True))
    return type(left) is type(right) and left == right


def _cause_matches(expected: str | None, actual: str | None, mode: str) -> bool:
    if expected is None or actual is None:
        return expected == actual
    if mode == "json":
        try:
            return _same(json.loads(expected), json.loads(actual))
        except ValueError:
            return False
    if mode == "template":
        pieces = re.split(r"<json-input:\d+>", expected)
        pattern = "(?s)" + ".*?".join(re.escape(piece) for piece in pieces)
        return re.fullmatch(pattern, actual) is not None
    return expected == actual


def compare(expected: Mapping[str, Any], actual: Mapping[str, Any]) -> str | None:
    """Why ``actual`` differs from the recorded result, or None when it matches."""
    problems = []
    if expected.get("status") != actual.get("status"):
        problems.append(f"status {actual.get('status')!r} != {expected.get('status')!r}")
    if expected.get("status") == "SUCCEEDED" and not _same(
        expected.get("output"), actual.get("output")
    ):
        problems.append(
            f"output {json.dumps(actual.get('output'))} != {json.dumps(expected.get('output'))}"
        )
    if expected.get("status") == "FAILED":
        if expected.get("error") != actual.get("error"):
            problems.append(f"error {actual.get('error')!r} != {expected.get('error')!r}")
        mode = expected.get("cause_compare") or "exact"
        if not _cause_matches(expected.get("cause"), actual.get("cause"), mode):
            problems.append(f"cause {actual.get('cause')!r} != {expected.get('cause')!r}")
    return "; ".join(problems) or None


# -- running ----------------------------------------------------------------------------


def _timeout(case: Case) -> float:
    return BASE_TIMEOUT + case.max_wait_s


def run_case(case: Case, timeout: float | None = None) -> Outcome:
    """Run one case on the running local orchestrator and compare it with the recording."""
    from orchestrator.client.api import start_workflow
    from orchestrator.errors import DefinitionError, OrchestratorError

    started = time.monotonic()
    guard = _table.using(case.lambdas) if case.lambdas else contextlib.nullcontext()
    with guard:
        try:
            handle = start_workflow(case.definition, case.input, name=uuid.uuid4().hex)
            result = handle.result(timeout if timeout is not None else _timeout(case))
        except DefinitionError as exc:
            return Outcome(
                case.id, "failed", f"definition rejected: {exc}", time.monotonic() - started
            )
        except TimeoutError as exc:
            return Outcome(case.id, "failed", f"timed out: {exc}", time.monotonic() - started)
        except (OrchestratorError, ValueError) as exc:
            return Outcome(
                case.id,
                "failed",
                f"start failed: {type(exc).__name__}: {exc}",
                time.monotonic() - started,
            )
    actual = {
        "status": result.status.value if hasattr(result.status, "value") else result.status,
        "output": result.output,
        "error": result.error,
        "cause": result.cause,
    }
    problem = compare(case.expected, actual)
    return Outcome(
        case.id,
        "failed" if problem else "passed",
        problem or "",
        time.monotonic() - started,
        actual,
    )


def run_cases(
    cases: Sequence[Case],
    skips: Mapping[str, str] | None = None,
    *,
    workers: int = 16,
    include_skipped: bool = False,
    progress: Callable[[Outcome], None] | None = None,
) -> dict[str, Outcome]:
    """Run ``cases`` (those without Lambda functions concurrently) on the running orchestrator.

    Cases in ``skips`` are reported as skipped without running, unless ``include_skipped``.
    """
    skips = skips or {}
    outcomes: dict[str, Outcome] = {}
    to_run = []
    for case in cases:
        if case.id in skips and not include_skipped:
            outcomes[case.id] = Outcome(case.id, "skipped", skips[case.id])
        else:
            to_run.append(case)

    def one(case: Case) -> Outcome:
        try:
            outcome = run_case(case)
        except Exception as exc:  # noqa: BLE001 - a crash is a failed case, not a crashed run
            outcome = Outcome(case.id, "failed", f"runner error: {type(exc).__name__}: {exc}")
        if progress is not None:
            progress(outcome)
        return outcome

    # Cases with Lambda functions take turns in one thread; the others share the pool,
    # longest Wait first so that slow cases do not trail at the end.
    serial = [case for case in to_run if case.lambdas]
    parallel = sorted((case for case in to_run if not case.lambdas), key=lambda c: -c.max_wait_s)
    with ThreadPoolExecutor(max_workers=max(2, workers)) as pool:
        serial_job = pool.submit(lambda: [one(case) for case in serial])
        for outcome in pool.map(one, parallel):
            outcomes[outcome.case_id] = outcome
        for outcome in serial_job.result():
            outcomes[outcome.case_id] = outcome
    return {case.id: outcomes[case.id] for case in cases}


def summarize(outcomes: Mapping[str, Outcome]) -> list[dict[str, Any]]:
    """Rows ``{category, passed, failed, skipped}`` (and a ``TOTAL`` row)."""
    rows: dict[str, dict[str, Any]] = {}
    for case_id, outcome in outcomes.items():
        category = case_id.split("/", 1)[0]
        row = rows.setdefault(
            category, {"category": category, "passed": 0, "failed": 0, "skipped": 0}
        )
        row[outcome.status] += 1
    table = [rows[name] for name in sorted(rows)]
    total = {"category": "TOTAL", "passed": 0, "failed": 0, "skipped": 0}
    for row in table:
        for key in ("passed", "failed", "skipped"):
            total[key] += row[key]
    return [*table, total]


def _format_table(rows: list[dict[str, Any]]) -> str:
    width = max([len("category"), *(len(r["category"]) for r in rows)])
    lines = [f"{'category':<{width}}  {'passed':>6}  {'failed':>6}  {'skipped':>7}"]
    for row in rows:
        lines.append(
            f"{row['category']:<{width}}  {row['passed']:>6}  {row['failed']:>6}  "
            f"{row['skipped']:>7}"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m orchestrator.conformance``: run the corpus and print the table."""
    parser = argparse.ArgumentParser(
        prog="python -m orchestrator.conformance", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--corpus", type=Path, default=None, help="corpus folder")
    parser.add_argument("--category", default=None, help="run one category only")
    parser.add_argument("--case", action="append", default=None, help="run this case id")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("--failures", action="store_true", help="also list failed cases and why")
    parser.add_argument("--include-skipped", action="store_true", help="run the skipped cases too")
    parser.add_argument("--workers", type=int, default=16)
    args = parser.parse_args(argv)

    corpus = args.corpus or default_corpus()
    try:
        require_corpus(corpus)
    except FileNotFoundError as exc:
        print(exc, file=sys.stderr)
        return 2
    cases = load_cases(corpus, args.category)
    if args.case:
        wanted = set(args.case)
        cases = [case for case in cases if case.id in wanted]
    skips = load_skips()
    register_lambdas(cases)

    import logging

    from orchestrator.testing import local_orchestrator

    logging.getLogger("celery").setLevel(logging.ERROR)
    started = time.monotonic()
    with local_orchestrator(task_modules=[], concurrency=16):
        outcomes = run_cases(
            cases, skips, workers=args.workers, include_skipped=args.include_skipped
        )
    elapsed = time.monotonic() - started
    rows = summarize(outcomes)
    if args.json:
        report = {
            "corpus": str(corpus),
            "seconds": round(elapsed, 1),
            "table": rows,
            "cases": {
                case_id: {
                    "status": o.status,
                    "detail": o.detail,
                    "seconds": round(o.seconds, 3),
                    **({"skip_reason": skips[case_id]} if case_id in skips else {}),
                }
                for case_id, o in outcomes.items()
            },
        }
        print(json.dumps(report, indent=2))
        return _exit_code(outcomes)
    print(_format_table(rows))
    print(f"({len(outcomes)} cases in {elapsed:.1f} s; corpus {corpus})")
    if args.failures:
        for case_id, outcome in outcomes.items():
            if outcome.status == "failed":
                print(f"FAIL {case_id}: {outcome.detail[:500]}")
            elif args.include_skipped and case_id in skips and outcome.passed:
                print(f"SKIPPED-BUT-PASSES {case_id}")
    return _exit_code(outcomes)


def _exit_code(outcomes: Mapping[str, Outcome]) -> int:
    return 1 if any(o.status == "failed" for o in outcomes.values()) else 0


if __name__ == "__main__":
    raise SystemExit(main())
