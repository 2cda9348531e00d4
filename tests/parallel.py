"""How ``./run test`` shares the suite between pytest-xdist workers (``--dist loadgroup``).

Each worker is a pytest session of its own, with its own session fixtures (an embedded
Redis, or a private key prefix and queue on a shared one, and an in-process Celery
worker). A test file goes whole to one worker: its module fixtures start once and its
tests run in their written order, as in a serial run. A test marked
``@pytest.mark.xdist_group(name)`` goes with the other tests of that group instead, which
may span files or split one (the conformance corpus runs in a few groups, so that the
workers share its cases).
"""

from __future__ import annotations

from typing import Any

import pytest


def _scheduler_class() -> type:
    from xdist.scheduler import LoadGroupScheduling

    class GroupOrFileScheduling(LoadGroupScheduling):  # type: ignore[misc]
        """``loadgroup``, with a test outside any group grouped by its file."""

        def _split_scope(self, nodeid: str) -> str:
            scope: str = super()._split_scope(nodeid)
            if scope != nodeid:  # an xdist_group
                return scope
            return nodeid.split("::", 1)[0]

    return GroupOrFileScheduling


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """The scheduler of ``--dist loadgroup``; xdist's own for the other modes."""
    if config.getvalue("dist") != "loadgroup":
        return None
    return _scheduler_class()(config, log)
