"""Routes declared at module level and added to each app as its own routes.

FastAPI's ``include_router`` keeps an included router as one nested entry of
``app.routes`` (as of FastAPI 0.165), and routes built on a separate ``APIRouter`` miss the
app router's settings; :meth:`RouteGroup.add_to` calls ``app.add_api_route`` instead, exactly
as ``@app.get`` would.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from fastapi import FastAPI

Endpoint = TypeVar("Endpoint", bound=Callable[..., Any])


class RouteGroup:
    """A group of routes: ``@group.get(path, ...)`` records one, ``add_to(app)`` adds them
    all in the order declared (the order requests are matched in)."""

    def __init__(self, **defaults: Any) -> None:
        self._defaults = defaults
        self._routes: list[tuple[str, Callable[..., Any], dict[str, Any]]] = []

    def get(self, path: str, **options: Any) -> Callable[[Endpoint], Endpoint]:
        """Declare a GET route (``options`` as for ``FastAPI.get``)."""
        return self._route(path, "GET", options)

    def post(self, path: str, **options: Any) -> Callable[[Endpoint], Endpoint]:
        """Declare a POST route (``options`` as for ``FastAPI.post``)."""
        return self._route(path, "POST", options)

    def _route(
        self, path: str, method: str, options: dict[str, Any]
    ) -> Callable[[Endpoint], Endpoint]:
        def declare(endpoint: Endpoint) -> Endpoint:
            self._routes.append(
                (path, endpoint, {**self._defaults, **options, "methods": [method]})
            )
            return endpoint

        return declare

    def add_to(self, app: FastAPI) -> None:
        """Add every route of the group to ``app``; those whose path ends in a ``:path``
        parameter after the others, so that one (``/api/executions/{execution_id:path}``,
        an execution ARN may hold a slash) does not take the requests of a longer route
        (``.../{execution_id:path}/history``)."""
        ordered = sorted(self._routes, key=lambda route: route[0].endswith(":path}"))
        for path, endpoint, options in ordered:
            app.add_api_route(path, endpoint, **options)
