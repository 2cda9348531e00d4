"""A web UI and JSON API for executions: ``serve()`` runs it, ``create_app()`` builds it.

::

    REDIS_URL=redis://localhost:6379/0 python -c "from orchestrator.ui import serve; serve()"

Pages: ``/`` (executions), ``/executions/{id}`` (state graph, details, history, actions),
``/dead-letters``; JSON API under ``/api/`` described by ``/openapi.json``. Set
``ORCHESTRATOR_UI_TOKEN`` to require a token for every action.
"""

from orchestrator.ui.app import create_app, serve
from orchestrator.ui.data import get_execution_definition

__all__ = ["create_app", "get_execution_definition", "serve"]
