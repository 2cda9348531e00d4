"""The demo: an order-fulfillment workflow, its activities and example inputs.

Nothing here is imported unless asked for: a worker runs the demo's activities only when
told to (``--tasks orchestrator.examples.order_activities`` or
``ORCHESTRATOR_TASK_MODULES``). The workflows in :data:`WORKFLOWS_DIR` are found by name
(``orchestrator run order_fulfillment``) after the user's own workflows folder.
"""

from __future__ import annotations

from pathlib import Path

#: The module registering the demo's activities.
ACTIVITIES_MODULE = "orchestrator.examples.order_activities"
#: The demo's workflow definitions, found by name after the configured workflows folder.
WORKFLOWS_DIR = Path(__file__).parent / "workflows"
#: Example inputs of the demo workflow.
INPUTS_DIR = Path(__file__).parent / "inputs"
