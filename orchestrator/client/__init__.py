"""The public API: :mod:`.api` (executions), :mod:`.control` (callbacks, stop, redrive,
dead letters), :mod:`.models`, and :class:`Orchestrator`, an explicit client
(:mod:`.client`), loaded on first use."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from orchestrator.client.client import Orchestrator

__all__ = ["Orchestrator"]


def __getattr__(name: str) -> Any:
    if name == "Orchestrator":
        from orchestrator.client.client import Orchestrator

        return Orchestrator
    raise AttributeError(f"module 'orchestrator.client' has no attribute {name!r}")
