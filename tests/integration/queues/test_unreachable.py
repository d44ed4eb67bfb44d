"""A broker that is down fails `start()` quickly with a masked URL and a fix."""

from __future__ import annotations

import pytest

from v10r.errors import QueueError
from v10r.queues.factory import create_queue
from v10r.spec.model import Queue as QueueSpec

pytestmark = pytest.mark.integration


@pytest.mark.parametrize(("kind", "url"), [
    ("redis", "redis://:s3cretpw@127.0.0.1:1/0"),
    ("rabbitmq", "amqp://guest:s3cretpw@127.0.0.1:1/"),
    ("kafka", "kafka://127.0.0.1:1"),
])
async def test_unreachable_broker_is_a_clear_error_without_the_password(
        kind: str, url: str) -> None:
    queue = create_queue(QueueSpec(kind=kind, url=url), pipelines=["docs"])

    with pytest.raises(QueueError) as raised:
        await queue.start()
    await queue.close()

    message = str(raised.value)
    assert "s3cretpw" not in message and "s3cretpw" not in repr(queue)
    assert "127.0.0.1:1" in message and f"cannot reach the {kind} broker" in message
    assert raised.value.hint
