"""``ItemBatcher``: grouping a Distributed Map's items into child inputs (pure).

Step Functions' rules (ItemBatcher documentation): each child receives
``{"Items": [...]}``, plus ``"BatchInput": <BatchInput>`` when the batcher has one (nested
under that key, not merged); ``MaxItemsPerBatch`` caps the items of a batch;
``MaxInputBytesPerBatch`` (up to 256 KiB) caps its size in bytes, and with both the count
is reduced until the size fits; with neither byte cap, a batch holds as many items as fit
in 256 KiB. The size counted here is the child's whole input as compact UTF-8 JSON, so
``BatchInput`` counts too (the child input is what must fit in the payload limit).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from orchestrator.errors import StatesRuntimeError

#: The payload limit of a child execution's input, and the batch size cap by default.
MAX_BATCH_BYTES = 256 * 1024


def _size(value: Any) -> int:
    return len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8"))


def batch_input_of(items: list[Any], batch_input: Any = None) -> dict[str, Any]:
    """The input of the child that processes ``items``."""
    if batch_input is None:
        return {"Items": items}
    return {"BatchInput": batch_input, "Items": items}


def _limits(max_items: int | None, max_bytes: int | None) -> tuple[int | None, int]:
    if max_items is not None and max_items <= 0:
        raise StatesRuntimeError(f"MaxItemsPerBatch must be a positive integer, not {max_items}")
    if max_bytes is not None and max_bytes <= 0:
        raise StatesRuntimeError(
            f"MaxInputBytesPerBatch must be a positive integer, not {max_bytes}"
        )
    return max_items, min(max_bytes, MAX_BATCH_BYTES) if max_bytes else MAX_BATCH_BYTES


def fit(
    items: Sequence[Any],
    max_items_per_batch: int | None = None,
    max_input_bytes_per_batch: int | None = None,
    batch_input: Any = None,
) -> int:
    """How many of ``items``, from the first, make the next batch (at least 1 if any).

    Raises ``States.Runtime`` when the first item alone does not fit the byte cap: no batch
    could carry it.
    """
    max_items, max_bytes = _limits(max_items_per_batch, max_input_bytes_per_batch)
    if not items:
        return 0
    # Most batches fit whole: one encoding of the whole batch (the size the loop below
    # adds up item by item, as compact JSON concatenates) instead of one per item.
    whole = list(items[:max_items] if max_items is not None else items)
    if _size(batch_input_of(whole, batch_input)) <= max_bytes:
        return len(whole)
    # {"Items":[]} or {"BatchInput":...,"Items":[]}; each item adds its size and a comma.
    size = _size(batch_input_of([], batch_input))
    count = 0
    for item in items:
        if max_items is not None and count >= max_items:
            break
        added = _size(item) + (1 if count else 0)
        if size + added > max_bytes:
            if count == 0:
                raise StatesRuntimeError(
                    f"an item of {_size(item)} bytes does not fit in a batch of at most "
                    f"{max_bytes} bytes (MaxInputBytesPerBatch, BatchInput included)"
                )
            break
        size += added
        count += 1
    return count


def iter_batches(
    items: Iterable[Any],
    max_items_per_batch: int | None = None,
    max_input_bytes_per_batch: int | None = None,
    batch_input: Any = None,
) -> Iterator[dict[str, Any]]:
    """The child inputs of ``items`` in order, holding only one batch at a time."""
    max_items, max_bytes = _limits(max_items_per_batch, max_input_bytes_per_batch)
    empty = _size(batch_input_of([], batch_input))
    current: list[Any] = []
    size = empty
    for item in items:
        added = _size(item) + (1 if current else 0)
        full = max_items is not None and len(current) >= max_items
        if current and (full or size + added > max_bytes):
            yield batch_input_of(current, batch_input)
            current, size = [], empty
            added -= 1
        if size + added > max_bytes:
            raise StatesRuntimeError(
                f"an item of {_size(item)} bytes does not fit in a batch of at most "
                f"{max_bytes} bytes (MaxInputBytesPerBatch, BatchInput included)"
            )
        current.append(item)
        size += added
    if current:
        yield batch_input_of(current, batch_input)


def batches(
    items: Iterable[Any],
    max_items_per_batch: int | None = None,
    max_input_bytes_per_batch: int | None = None,
    batch_input: Any = None,
) -> list[dict[str, Any]]:
    """Every child input of ``items``: ``[{"Items": [...]}...]``, with ``"BatchInput"``
    beside ``"Items"`` when given."""
    return list(iter_batches(items, max_items_per_batch, max_input_bytes_per_batch, batch_input))


def batch_size(batch: dict[str, Any]) -> int:
    """The size in bytes that the byte cap compares (compact UTF-8 JSON)."""
    return _size(batch)
