"""Example Celery overrides (``ORCHESTRATOR_CELERY_CONFIG=orchestrator.examples.celeryconfig``).

Copy it into your project and point ``ORCHESTRATOR_CELERY_CONFIG`` at your copy's module.
Its lower-case names are applied on top of the orchestrator's Celery configuration
(:func:`orchestrator.engine.celery_app.celery_config`), except the settings its guarantees
rest on (JSON only, late acknowledgement, prefetch 1, no result backend): setting one of
those is a ``ConfigurationError``.
"""

#: Processes per worker (Celery's default: one per CPU core).
worker_concurrency = 4
