"""Root test configuration: fixture plugins shared by unit and integration tests."""

from collections.abc import Iterator

import pytest
import structlog

pytest_plugins = ["tests.integration.otlp_fixtures"]

from tests._otel import signals  # noqa: E402,F401  (in-memory OTel signals fixture)


@pytest.fixture(autouse=True)
def _structlog_unconfigured() -> Iterator[None]:
    """Every test starts and ends with structlog unconfigured: ``capture_logs()`` and
    ``configure_logging()`` leave it configured, which reroutes graphai's own warnings from
    the stdlib ``graphai`` logger to structlog in whatever test runs next."""
    structlog.reset_defaults()
    yield
    structlog.reset_defaults()
