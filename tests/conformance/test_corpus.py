"""Every case of the ASL conformance corpus, run end to end and compared with AWS.

The corpus (``tests/conformance/corpus``, or ``$ORCHESTRATOR_CONFORMANCE_CORPUS``) is read
at collection; without it collection fails, so no case can silently vanish. All selected
cases run once, concurrently, on the session's local orchestrator (the ``orchestrator``
fixture of ``tests/conftest.py``); each parametrized test then checks its own case.
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


def _params() -> list[Any]:
    params = []
    for case in CASES:
        marks = [pytest.mark.skip(reason=SKIPS[case.id])] if case.id in SKIPS else []
        params.append(pytest.param(case, id=case.id, marks=marks))
    return params


@pytest.fixture(scope="module")
def corpus_outcomes(
    request: pytest.FixtureRequest, orchestrator: Any
) -> dict[str, conformance.Outcome]:
    """Run every selected, non-skipped case once (concurrently) and keep the outcomes."""
    selected = set()
    for item in request.session.items:
        callspec = getattr(item, "callspec", None)
        if callspec is not None and isinstance(callspec.params.get("case"), conformance.Case):
            selected.add(callspec.params["case"].id)
    cases = [case for case in CASES if case.id in selected]
    return conformance.run_cases(cases, SKIPS)


@pytest.mark.parametrize("case", _params())
def test_case(case: conformance.Case, corpus_outcomes: dict[str, conformance.Outcome]) -> None:
    outcome = corpus_outcomes[case.id]
    assert outcome.passed, f"{case.id}: {outcome.detail}"


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
