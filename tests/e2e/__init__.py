"""End-to-end tests with separate worker processes."""
