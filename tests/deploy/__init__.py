"""Deployment artefacts: Procfile (run with honcho), docker-compose.yml, Dockerfile."""
