"""Fixtures of the listener tests (helpers live in `helpers.py`)."""

from tests.fixtures.queues import redis_url  # noqa: F401
from tests.integration.listen.helpers import make_table  # noqa: F401
