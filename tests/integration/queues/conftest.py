"""Queue fixtures for these tests (pytest only reads `pytest_plugins` at the top level)."""

from tests.fixtures.queues import kafka_broker, queue_factory, rabbitmq_url, redis_url  # noqa: F401
