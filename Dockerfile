# The orchestrator's image: worker (default), beat, flower and ui all run from it.
#   docker build -t orchestrator .
#   docker run --rm -e REDIS_URL=redis://redis-host:6379/0 orchestrator          # a worker
#   docker run --rm -e REDIS_URL=... orchestrator python -m orchestrator beat    # beat
# See docker-compose.yml and docs/deployment.md.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# An unprivileged user owns nothing in the image: the code is read-only to it.
RUN groupadd --system --gid 10001 orchestrator \
    && useradd --system --uid 10001 --gid orchestrator --no-create-home \
       --home-dir /nonexistent --shell /usr/sbin/nologin orchestrator

WORKDIR /app

# The project (the installed package, with the demo in orchestrator.examples). Your own
# workflows go in /app/workflows (ORCHESTRATOR_WORKFLOWS_DIR, relative to /app) and your
# activity modules in /app (ORCHESTRATOR_TASK_MODULES): mount them, or build FROM this image.
COPY pyproject.toml README.md ./
COPY orchestrator ./orchestrator
# flower is not a dependency of the package (only of its dev extra): the flower service
# needs it in the image.
RUN pip install . "flower>=2.0,<3" && rm -rf build ./*.egg-info

USER orchestrator:orchestrator

# flower (5555) and ui (8080); workers and beat listen on nothing.
EXPOSE 5555 8080

# Exec form (no shell in between): the process gets `docker stop`'s SIGTERM itself, which
# starts Celery's warm shutdown (running steps finish first).
CMD ["python", "-m", "orchestrator", "worker"]
