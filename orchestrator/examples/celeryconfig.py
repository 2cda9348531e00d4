"""Optional Celery overrides, applied on top of the orchestrator's own configuration.

Anything set here wins over the defaults of ``orchestrator.engine.celery_app`` — but leave the
serializer and acknowledgement settings alone: the orchestrator's guarantees rely on them.
"""

# Uncomment to fix the worker concurrency (default: one process per CPU core).
# worker_concurrency = 4
