"""The state machines page: every registered state machine with its versions and aliases
(orchestrator/client/machines.py). Read-only: the registry is changed with the Python API,
``orchestrator machines ...`` or ``orchestrator deploy``."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse, Response

from orchestrator.client.machines import (
    describe_state_machine,
    list_state_machine_aliases,
    list_state_machine_versions,
    list_state_machines,
)
from orchestrator.errors import StateMachineNotFound
from orchestrator.ui.context import UI
from orchestrator.ui.routing import RouteGroup

routes = RouteGroup(include_in_schema=False)

#: State machines shown on the page (by name), and versions shown per machine (newest).
MACHINES_SHOWN = 200
VERSIONS_SHOWN = 10


@routes.get("/machines", response_class=HTMLResponse)
def machines_page(request: Request, ui: UI) -> Response:
    rows: list[dict[str, Any]] = []
    page = list_state_machines(max_results=MACHINES_SHOWN)
    for item in page.state_machines:
        try:
            rows.append(
                {
                    "machine": describe_state_machine(item.name),
                    "versions": list_state_machine_versions(
                        item.name, max_results=VERSIONS_SHOWN
                    ).state_machine_versions,
                    "aliases": list_state_machine_aliases(item.name).state_machine_aliases,
                }
            )
        except StateMachineNotFound:
            continue  # deleted since it was listed
    context = {"title": "State machines", "machines": rows, "more": page.next_token is not None}
    return ui.render(request, "machines.html", context)
