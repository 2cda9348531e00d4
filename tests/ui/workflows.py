"""Workflows and inputs of the UI tests (the demo order workflow, plus two variants)."""

from __future__ import annotations

import uuid
from typing import Any

ITEMS = [{"sku": "book", "quantity": 2, "price": 12.5}, {"sku": "pen", "quantity": 3, "price": 1.5}]
OUT_OF_STOCK = [{"sku": "lamp", "quantity": 5, "price": 30.0}]

#: An order that waits for a manager's approval (a ``.waitForTaskToken`` task).
ORDER_APPROVAL: dict[str, Any] = {
    "Comment": "order_approval",
    "StartAt": "ValidateOrder",
    "States": {
        "ValidateOrder": {
            "Type": "Task",
            "Resource": "validate-order",
            "ResultPath": "$.validation",
            "Next": "ManagerApproval",
        },
        "ManagerApproval": {
            "Type": "Task",
            "Resource": "ui-approval-request.waitForTaskToken",
            "Parameters": {
                "order_id.$": "$.order_id",
                "total.$": "$.validation.total",
                "token.$": "$$.Task.Token",
            },
            "ResultPath": "$.approval",
            "Catch": [{"ErrorEquals": ["Rejected"], "ResultPath": "$.error", "Next": "Declined"}],
            "Next": "SendConfirmation",
        },
        "SendConfirmation": {
            "Type": "Task",
            "Resource": "send-confirmation",
            "Parameters": {"order_id.$": "$.order_id"},
            "ResultPath": "$.confirmation",
            "Next": "Approved",
        },
        "Approved": {"Type": "Succeed"},
        "Declined": {"Type": "Fail", "Error": "Declined", "Cause": "A manager declined"},
    },
}

#: An order whose shipping fails (uncaught) until the carrier is back: for redrive.
ORDER_SHIPPING: dict[str, Any] = {
    "Comment": "order_shipping",
    "StartAt": "ValidateOrder",
    "States": {
        "ValidateOrder": {
            "Type": "Task",
            "Resource": "validate-order",
            "ResultPath": "$.validation",
            "Next": "ShipOrder",
        },
        "ShipOrder": {
            "Type": "Task",
            "Resource": "ui-ship",
            "Parameters": {"order_id.$": "$.order_id"},
            "ResultPath": "$.shipment",
            "Next": "Shipped",
        },
        "Shipped": {"Type": "Succeed"},
    },
}

#: Parallel branches and a Map, to check nested drawing and folded statuses.
FAN_OUT: dict[str, Any] = {
    "Comment": "fan_out",
    "StartAt": "Both",
    "States": {
        "Both": {
            "Type": "Parallel",
            "Branches": [
                {"StartAt": "Left", "States": {"Left": {"Type": "Pass", "End": True}}},
                {
                    "StartAt": "Right",
                    "States": {"Right": {"Type": "Task", "Resource": "ui-echo", "End": True}},
                },
            ],
            "ResultPath": "$.both",
            "Next": "Each",
        },
        "Each": {
            "Type": "Map",
            "ItemsPath": "$.items",
            "ItemProcessor": {
                "StartAt": "Echo",
                "States": {"Echo": {"Type": "Task", "Resource": "ui-echo", "End": True}},
            },
            "End": True,
        },
    },
}

#: Parallel branches sharing a state name, a Map whose items retry or are caught, and a
#: Choice with a Default: for nested details and edge routing. Input: ``nested_input()``.
NESTED: dict[str, Any] = {
    "Comment": "nested",
    "StartAt": "Prepare",
    "States": {
        "Prepare": {
            "Type": "Parallel",
            "Branches": [
                {
                    "StartAt": "Square",
                    "States": {
                        "Square": {
                            "Type": "Pass",
                            "Parameters": {"branch": "pass", "n.$": "$.n"},
                            "End": True,
                        }
                    },
                },
                {
                    "StartAt": "Square",
                    "States": {
                        "Square": {
                            "Type": "Task",
                            "Resource": "ui-square",
                            "Parameters": {"n.$": "$.n"},
                            "End": True,
                        }
                    },
                },
            ],
            "ResultPath": "$.squares",
            "Next": "ChargeEach",
        },
        "ChargeEach": {
            "Type": "Map",
            "ItemsPath": "$.amounts",
            "ItemProcessor": {
                "StartAt": "Charge",
                "States": {
                    "Charge": {
                        "Type": "Task",
                        "Resource": "ui-charge",
                        "Parameters": {"amount.$": "$", "retry.$": "$$.State.RetryCount"},
                        "Retry": [
                            {"ErrorEquals": ["GatewayBusy"], "IntervalSeconds": 1, "MaxAttempts": 2}
                        ],
                        "Catch": [{"ErrorEquals": ["CardDeclined"], "Next": "Declined"}],
                        "End": True,
                    },
                    "Declined": {"Type": "Pass", "Result": {"declined": True}, "End": True},
                },
            },
            "ResultPath": "$.charges",
            "Next": "Route",
        },
        "Route": {
            "Type": "Choice",
            "Choices": [{"Variable": "$.express", "BooleanEquals": True, "Next": "Express"}],
            "Default": "Standard",
        },
        "Express": {"Type": "Pass", "Next": "Done"},
        "Standard": {"Type": "Pass", "Next": "Done"},
        "Done": {"Type": "Succeed"},
    },
}


def nested_input(amounts: list[int] | None = None, **extra: Any) -> dict[str, Any]:
    """Input of :data:`NESTED`: an amount divisible by 3 fails once (GatewayBusy, retried),
    a negative one is declined (caught)."""
    return {"n": 7, "amounts": amounts or [4, 9, -2, 5, 6], "express": False, **extra}


def order_input(items: list[dict[str, Any]] | None = None, **extra: Any) -> dict[str, Any]:
    """An order with a fresh id."""
    return {"order_id": f"o-{uuid.uuid4().hex[:8]}", "items": items or ITEMS, **extra}
