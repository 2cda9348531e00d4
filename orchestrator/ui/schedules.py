"""The schedules page: every schedule, its next fire time and its latest firings
(orchestrator/client/schedules.py). Read-only: schedules are created and changed with
the Python API or ``orchestrator schedule ...``."""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import HTMLResponse, Response

from orchestrator.client.schedules import describe_schedule, list_schedules
from orchestrator.ui.context import UI
from orchestrator.ui.routing import RouteGroup

routes = RouteGroup(include_in_schema=False)

#: Latest firings shown per schedule.
FIRINGS_SHOWN = 5


@routes.get("/schedules", response_class=HTMLResponse)
def schedules_page(request: Request, ui: UI) -> Response:
    rows = [describe_schedule(s.name, 3, FIRINGS_SHOWN) for s in list_schedules()]
    return ui.render(request, "schedules.html", {"title": "Schedules", "schedules": rows})
