"""Every case of the ASL conformance corpus, run end to end and compared with AWS.

The corpus (``tests/conformance/corpus``, or ``$ORCHESTRATOR_CONFORMANCE_CORPUS``) is read
at collection; without it collection fails, so no case can silently vanish. Every selected
case runs once, on the session's local orchestrator (the ``orchestrator`` fixture of
``tests/conftest.py``); each parametrized test then checks its own case. The cases are
dealt into ``SHARDS`` shards, each an xdist group (``tests/parallel.py``): a shard's
selected cases run together, concurrently, when its first test needs an outcome, so that
``./run test``'s workers share the corpus (a serial run runs the shards one after another).
Known gaps are listed, with the missing feature, in ``tests/conformance/skips.py``.
"""

from __future__ import annotations

from typing import Any

import pytest

from orchestrator import conformance
from tests.conformance.skips import SKIPS

CORPUS = conformance.require_corpus()
CASES = conformance.load_cases(CORPUS)
# Activities must exist before the session's worker starts: register at collection.
conformance.register_lambdas(CASES)


#: How many groups the corpus is dealt into: more than ``./run test``'s workers, so that
#: they finish together, yet each shard is large enough to keep the worker's threads busy.
SHARDS = 4
#: The shard of each case: dealt round-robin, so every shard gets cases of every kind.
SHARD_OF = {case.id: index % SHARDS for index, case in enumerate(CASES)}


def _params() -> list[Any]:
    params = []
    for case in CASES:
        marks = [pytest.mark.xdist_group(f"conformance-{SHARD_OF[case.id]}")]
        if case.id in SKIPS:
            marks.append(pytest.mark.skip(reason=SKIPS[case.id]))
        params.append(pytest.param(case, id=case.id, marks=marks))
    return params


class CorpusRuns:
    """The outcomes of the selected cases, run a shard at a time when first needed."""

    def __init__(self, selected: list[conformance.Case]) -> None:
        self._pending: dict[int, list[conformance.Case]] = {}
        for case in selected:
            self._pending.setdefault(SHARD_OF[case.id], []).append(case)
        self._outcomes: dict[str, conformance.Outcome] = {}

    def outcome(self, case: conformance.Case) -> conformance.Outcome:
        """The case's outcome; runs its shard's selected cases (concurrently) the first time."""
        shard = SHARD_OF[case.id]
        if shard in self._pending:
            self._outcomes.update(conformance.run_cases(self._pending.pop(shard), SKIPS))
        return self._outcomes[case.id]


@pytest.fixture(scope="module")
def corpus_runs(request: pytest.FixtureRequest, orchestrator: Any) -> CorpusRuns:
    """The selected cases (those this session collected and kept), not yet run."""
    selected = set()
    for item in request.session.items:
        callspec = getattr(item, "callspec", None)
        if callspec is not None and isinstance(callspec.params.get("case"), conformance.Case):
            selected.add(callspec.params["case"].id)
    return CorpusRuns([case for case in CASES if case.id in selected])


@pytest.fixture
def corpus_outcome(case: conformance.Case, corpus_runs: CorpusRuns) -> conformance.Outcome:
    """This test's case, run (with the rest of its shard) if it has not been yet."""
    return corpus_runs.outcome(case)


@pytest.mark.parametrize("case", _params())
def test_case(case: conformance.Case, corpus_outcome: conformance.Outcome) -> None:
    assert corpus_outcome.passed, f"{case.id}: {corpus_outcome.detail}"


def test_the_corpus_is_complete() -> None:
    # Every case listed in cases.tsv is on disk: a partial copy cannot pass for a full one.
    listed = [
        "/".join(line.split("\t")[:2])
        for line in (CORPUS / "cases.tsv").read_text().splitlines()[1:]
        if line.strip()
    ]
    assert len(CASES) == len(listed) == 915
    assert {case.id for case in CASES} == set(listed)


def test_the_runner_refuses_a_missing_corpus(tmp_path: Any, capsys: Any) -> None:
    assert conformance.main(["--corpus", str(tmp_path / "nowhere")]) == 2
    assert "no conformance corpus" in capsys.readouterr().err
