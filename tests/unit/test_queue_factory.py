"""The factory picks the adapter and URL a spec asks for, and never prints a password."""

from __future__ import annotations

import pytest

from v10r.errors import EnvError, QueueError
from v10r.queues.connect import unreachable
from v10r.queues.factory import create_queue, kafka_bootstrap, queue_url
from v10r.queues.kafka import KafkaQueue
from v10r.queues.memory import MemoryQueue
from v10r.queues.rabbitmq import RabbitMQQueue
from v10r.queues.redis import RedisQueue
from v10r.spec.model import Queue as QueueSpec

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(("url", "bootstrap"), [
    ("kafka://127.0.0.1:9092", "127.0.0.1:9092"),
    ("kafka://k1:9092,k2:9093/", "k1:9092,k2:9093"),
    ("k1:9092", "k1:9092"),
])
def test_kafka_urls_map_to_bootstrap_servers(url: str, bootstrap: str) -> None:
    assert kafka_bootstrap(url) == bootstrap


@pytest.mark.parametrize("url", ["kafka://", "kafka://host", "kafka://u:pw@host:9092"])
def test_a_bad_kafka_url_is_an_error_with_a_hint(url: str) -> None:
    with pytest.raises(QueueError) as raised:
        kafka_bootstrap(url)
    assert "pw@" not in str(raised.value) and raised.value.hint


def test_url_comes_from_the_spec_with_env_expanded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MY_REDIS", "redis://:pw@cache:6379/2")
    assert queue_url(QueueSpec(kind="redis", url="${MY_REDIS}")) == "redis://:pw@cache:6379/2"


def test_url_defaults_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("V10R_KAFKA_URL", "kafka://broker:19092")
    monkeypatch.delenv("V10R_REDIS_URL", raising=False)
    assert queue_url(QueueSpec(kind="kafka")) == "kafka://broker:19092"
    assert queue_url(QueueSpec(kind="redis")) == "redis://127.0.0.1:6379/0"


def test_an_unset_variable_in_the_url_is_an_env_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_SUCH_URL", raising=False)
    with pytest.raises(EnvError):
        create_queue(QueueSpec(kind="rabbitmq", url="${NO_SUCH_URL}"), pipelines=["docs"])


@pytest.mark.parametrize(("kind", "adapter"), [
    ("memory", MemoryQueue), ("redis", RedisQueue), ("rabbitmq", RabbitMQQueue),
    ("kafka", KafkaQueue),
])
def test_each_kind_builds_its_adapter(kind: str, adapter: type) -> None:
    queue = create_queue(QueueSpec(kind=kind, max_attempts=3, partitions=8), pipelines=["docs"])
    assert isinstance(queue, adapter) and queue.kind == kind


def test_kafka_topics_get_the_spec_partition_count() -> None:
    queue = create_queue(QueueSpec(kind="kafka", partitions=8), pipelines=["docs"])
    assert isinstance(queue, KafkaQueue) and queue.partitions == 8


def test_connection_errors_mask_the_password_wherever_it_appears() -> None:
    url = "amqp://guest:hunter22@mq:5672/"
    error = unreachable("rabbitmq", url, OSError(f"refused by {url} (password hunter22)"))
    assert "hunter22" not in str(error) and "mq:5672" in str(error) and error.hint

