"""The project's own conformance cases for child workflows
(``tests/conformance/own/child_workflows``).

Realistic parent definitions as written for Step Functions (``states:startExecution`` in
its forms), run unchanged; the child workflows their ``StateMachineArn`` names are in the
category's ``workflows`` folder, made the workflows folder for the test (as a team keeps
its workflows in ``ORCHESTRATOR_WORKFLOWS_DIR``). Each case's ``expected.json`` is what AWS
gives for the same pair (the result shapes and error names are AWS's), compared as the
recorded corpus is (``orchestrator.conformance.compare``).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from orchestrator import conformance
from orchestrator.testing import process_settings

OWN = Path(__file__).parent / "own"
CASES = conformance.load_cases(OWN, "child_workflows")
WORKFLOWS = OWN / "child_workflows" / "workflows"


@pytest.fixture
def workflows(orchestrator) -> Iterator[None]:
    settings = orchestrator.settings.model_copy(update={"workflows_dir": str(WORKFLOWS)})
    with process_settings(settings):
        yield


def test_the_own_corpus_is_there() -> None:
    assert len(CASES) >= 3, [case.id for case in CASES]


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_case(case: conformance.Case, workflows: None) -> None:
    outcome = conformance.run_case(case, timeout=30)
    assert outcome.passed, (outcome.detail, outcome.actual)
