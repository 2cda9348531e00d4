"""The schedules page lists every schedule with its next fire times and latest firings."""

from __future__ import annotations

from typing import Any

from orchestrator import create_schedule, delete_schedule, trigger_schedule


def test_the_schedules_page_lists_schedules(client: Any, tag: str) -> None:
    name = f"ui-{tag}"
    definition = {"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}}
    create_schedule(name, definition, "cron(0 2 ? * MON-FRI *)", timezone="Europe/Paris")
    try:
        (execution,) = trigger_schedule(name).executions
        page = client.get("/schedules")
        assert page.status_code == 200
        html = page.text
        assert 'href="/schedules" aria-current="page"' in html
        row = html.split(f'data-schedule="{name}"')[1].split("</tr>")[0]
        assert "cron(0 2 ? * MON-FRI *)" in row and "Europe/Paris" in row
        assert "ENABLED" in row and "SKIP" in row and row.count("<time") >= 4
        assert f'href="/executions/{execution}"' in row and "STARTED" in row
    finally:
        delete_schedule(name)
    assert f'data-schedule="{name}"' not in client.get("/schedules").text
