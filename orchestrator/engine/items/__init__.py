"""The S3 side of a Distributed Map: ``ItemReader``, ``ItemBatcher``, ``ResultWriter``.

Self-contained: nothing here touches Redis or the interpreter. boto3 is optional (the
``orchestrator[aws]`` extra) and only imported when S3 is used.
"""

from orchestrator.engine.items.aws import aws_available, ensure_aws, requires_aws, s3_client
from orchestrator.engine.items.batcher import (
    MAX_BATCH_BYTES,
    batch_size,
    batches,
    fit,
    iter_batches,
)
from orchestrator.engine.items.reader import (
    GET_OBJECT,
    LIST_OBJECTS_V2,
    CursorState,
    ItemCursor,
    open_reader,
    read_batch,
    read_batches,
    validate_item_reader,
)
from orchestrator.engine.items.writer import (
    PUT_OBJECT,
    ResultWriter,
    map_run_id,
    result_entry,
    results_prefix,
)

__all__ = [
    "GET_OBJECT",
    "LIST_OBJECTS_V2",
    "MAX_BATCH_BYTES",
    "PUT_OBJECT",
    "CursorState",
    "ItemCursor",
    "ResultWriter",
    "aws_available",
    "batch_size",
    "batches",
    "ensure_aws",
    "fit",
    "iter_batches",
    "map_run_id",
    "open_reader",
    "read_batch",
    "read_batches",
    "requires_aws",
    "result_entry",
    "results_prefix",
    "s3_client",
    "validate_item_reader",
]
