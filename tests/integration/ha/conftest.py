"""Fixtures of the high-availability tests (listener tables, Redis)."""

from tests.fixtures.queues import redis_url  # noqa: F401
from tests.integration.listen.helpers import make_table  # noqa: F401
