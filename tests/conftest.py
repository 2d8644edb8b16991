"""Root test configuration: fixture plugins shared by unit and integration tests."""

pytest_plugins = ["tests.integration.otlp_fixtures"]

from tests._otel import signals  # noqa: E402,F401  (in-memory OTel signals fixture)
