"""Project configuration: Celery overrides and example workflow definitions."""
