"""Example activities: the order-fulfillment pipeline of the demo workflow.

Each is a plain function registered with ``@activity``; the workflow in
``orchestrator/examples/workflows/order_fulfillment.asl.json`` wires them together with Retry, Catch
and a Choice. The "payment gateway" fails transiently for orders that ask it to
(``"flaky_payment": N`` fails the first N charge attempts), to show retries.
"""

from __future__ import annotations

import logging
from typing import Any

from orchestrator import activity

logger = logging.getLogger(__name__)

#: Stock per SKU of the pretend warehouse.
STOCK = {"book": 10, "pen": 100, "lamp": 2}
_charge_attempts: dict[str, int] = {}


class InvalidOrder(Exception):
    """The order is malformed."""


class PaymentGatewayUnavailable(Exception):
    """The payment gateway did not answer; worth retrying."""


class OutOfStock(Exception):
    """An item cannot be reserved."""


@activity("validate-order")
def validate_order(order: dict[str, Any]) -> dict[str, Any]:
    """Check the order and compute its total."""
    items = order.get("items")
    if not order.get("order_id") or not isinstance(items, list) or not items:
        raise InvalidOrder("an order needs an order_id and at least one item")
    total = 0.0
    for item in items:
        if item.get("quantity", 0) <= 0 or item.get("price", -1) < 0:
            raise InvalidOrder(f"bad item {item!r}")
        total += item["quantity"] * item["price"]
    return {"valid": True, "total": round(total, 2), "item_count": len(items)}


@activity("charge-payment")
def charge_payment(request: dict[str, Any]) -> dict[str, Any]:
    """Charge the customer (fails transiently while ``flaky_payment`` says so)."""
    order_id = request["order_id"]
    attempt = _charge_attempts.get(order_id, 0) + 1
    _charge_attempts[order_id] = attempt
    # The demo passes the whole order along so the gateway can simulate outages.
    if attempt <= request.get("simulation", {}).get("flaky_payment", 0):
        raise PaymentGatewayUnavailable(f"gateway timeout (attempt {attempt})")
    return {"charge_id": f"ch_{order_id}", "amount": request["amount"], "status": "captured"}


@activity("reserve-inventory")
def reserve_inventory(request: dict[str, Any]) -> dict[str, Any]:
    """Reserve every item in the warehouse."""
    for item in request["items"]:
        if STOCK.get(item["sku"], 0) < item["quantity"]:
            raise OutOfStock(f"not enough {item['sku']!r} in stock")
    return {"reservation_id": f"res_{request['order_id']}"}


@activity("send-confirmation")
def send_confirmation(request: dict[str, Any]) -> dict[str, Any]:
    """E-mail the customer (pretend)."""
    logger.info("confirmation sent for %s", request["order_id"])
    return {"sent": True, "channel": request.get("channel", "email")}


@activity("cancel-order")
def cancel_order(request: dict[str, Any]) -> dict[str, Any]:
    """Refund and cancel after a failure."""
    return {"cancelled": True, "order_id": request["order_id"], "reason": request.get("reason")}
