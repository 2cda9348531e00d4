"""Activities of the UI tests' workflows (registered before the session worker starts:
the test modules import this one)."""

from __future__ import annotations

from typing import Any

from orchestrator import activity
from orchestrator.engine.store import get_store


class CarrierUnavailable(Exception):
    """The pretend carrier is down until the test says otherwise."""


def ship_key(order_id: str) -> str:
    """The Redis key that lets ``ui-ship`` succeed for an order."""
    return f"{get_store().keys.prefix}:uitest:ship-ok:{order_id}"


@activity("ui-approval-request")
def approval_request(request: dict[str, Any]) -> None:
    """Ask a person to approve (pretend): the task then waits for its task token."""
    return None


@activity("ui-ship")
def ship(request: dict[str, Any]) -> dict[str, Any]:
    """Hand the parcel to the carrier; fails until ``ship_key(order_id)`` is set."""
    if not get_store().client.get(ship_key(request["order_id"])):
        raise CarrierUnavailable("the carrier API is down")
    return {"tracking": f"TRK-{request['order_id']}"}


@activity("ui-echo")
def echo(value: Any) -> Any:
    """Return the input."""
    return value


class GatewayBusy(Exception):
    """The pretend payment gateway is busy (once per amount divisible by 3)."""


class CardDeclined(Exception):
    """A negative amount."""


@activity("ui-square")
def square(request: dict[str, Any]) -> dict[str, Any]:
    """Square a number."""
    return {"branch": "task", "square": request["n"] ** 2}


@activity("ui-charge")
def charge(request: dict[str, Any]) -> dict[str, Any]:
    """Charge an amount: busy on the first try of multiples of 3, declined if negative."""
    amount = request["amount"]
    if amount < 0:
        raise CardDeclined(f"card declined for {amount}")
    if amount % 3 == 0 and request["retry"] == 0:
        raise GatewayBusy(f"gateway busy charging {amount}")
    return {"charged": amount, "receipt": f"r-{amount}"}
