"""What the pages show, without Redis: durations and per-item details."""

from __future__ import annotations

import pytest

from orchestrator.ui.views import format_seconds


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (-0.0004, "0 ms"),  # an event stamped (rounded) just before the start
        (-0.0, "0 ms"),
        (0.0, "0 ms"),
        (0.0126, "13 ms"),
        (0.9996, "1.0 s"),
        (12.345, "12.3 s"),
        (59.96, "1 min 0 s"),
        (185, "3 min 5 s"),
        (7440, "2 h 4 min"),
        (200_000, "2 d 7 h"),
    ],
)
def test_format_seconds(seconds, text):
    assert format_seconds(seconds) == text
