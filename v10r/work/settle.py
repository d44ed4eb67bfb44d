"""What happens to each task after a batch: ack, retry or dead-letter, and the counts.

Both runtimes (the queue worker and the Faust agent) settle through `plan_settlement`
and count through `Counters`, so `failed`, `retried` and `dead_lettered` mean the same
everywhere, and every dead letter is logged with its pipeline, row and reason.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields

from v10r.ops.metrics import Sample
from v10r.queues.base import Delivery
from v10r.redact import mask_text
from v10r.work.core import BatchOutcome, Status

log = logging.getLogger("v10r.work")


@dataclass
class Counters:
    """Per pipeline; shared by all loops of one process, summed over runs by Faust."""

    processed: int = 0  # tasks finished: vector written or nothing to write
    written: int = 0  # rows whose vector (or empty-text marker) was written
    skipped: int = 0  # finished without a write: unchanged, gone, superseded, deduplicated
    deduplicated: int = 0  # Faust: the row was fetched after the task was published
    retried: int = 0  # tasks given back for another attempt (each spends one)
    dead_lettered: int = 0  # tasks sent to the dead-letter queue, unreadable ones included
    errors: int = 0  # outages (database, provider, broker) a batch was held through
    batches: int = 0

    def add(self, other: Counters) -> Counters:
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))
        return self

    def as_dict(self) -> dict[str, int]:
        return asdict(self)

    def snapshot(self) -> dict[str, int]:
        return self.as_dict()

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> Counters:
        known = {f.name for f in fields(cls)}
        values = {k: int(v) for k, v in data.items() if k in known}  # type: ignore[call-overload]
        if "failed" in data and "dead_lettered" not in data:  # records of earlier releases
            values["dead_lettered"] = int(data["failed"])  # type: ignore[call-overload]
        return cls(**values)


@dataclass(frozen=True, slots=True)
class Settlement:
    """Indices into the batch: what to ack, retry, and dead-letter (grouped by error)."""

    done: list[int]
    retry: dict[str, list[int]] = field(default_factory=dict)
    dead: dict[str, list[int]] = field(default_factory=dict)


def plan_settlement(outcome: BatchOutcome, attempts: Sequence[int],
                    max_attempts: int) -> Settlement:
    """Done tasks are acked; a retryable failure with attempts left is retried; the rest,
    and a failure that can never pass, are dead-lettered."""
    plan = Settlement(outcome.indices(done=True))
    for i in outcome.indices(done=False):
        result = outcome.outcomes[i]
        error = result.error or "failed"
        if result.retryable and attempts[i] < max_attempts:
            plan.retry.setdefault(error, []).append(i)
        else:
            reason = error if not result.retryable else f"{error} (after {attempts[i]} attempts)"
            plan.dead.setdefault(reason, []).append(i)
    return plan


def count(outcome: BatchOutcome, plan: Settlement) -> Counters:
    """What one settled batch adds to the counters."""
    written = sum(outcome.outcomes[i].status is Status.WRITTEN for i in plan.done)
    return Counters(processed=len(plan.done), written=written,
                    skipped=len(plan.done) - written,
                    retried=sum(len(g) for g in plan.retry.values()),
                    dead_lettered=sum(len(g) for g in plan.dead.values()), batches=1)


def log_dead_letters(pipeline: str, keys: Sequence[object], reason: str) -> None:
    """One line per dead-lettered group: pipeline, rows (the first few) and why."""
    shown = ", ".join(_key_text(k) for k in keys[:10]) + (" …" if len(keys) > 10 else "")
    log.warning("pipeline %s: dead-lettered %d task(s) [rows %s]: %s", pipeline, len(keys),
                shown, mask_text(reason))


async def dead_letter_unreadable(
        pipeline: str, deliveries: Sequence[Delivery],
        send: Callable[[list[Delivery], str], Awaitable[None]]) -> int:
    """Messages that are not a task this release reads go to the dead letters, with why."""
    groups: dict[str, list[Delivery]] = {}
    for d in deliveries:
        groups.setdefault(d.error or "unreadable task message", []).append(d)
    for error, group in groups.items():
        await send(group, error)
        log_dead_letters(pipeline, [d.raw[:80].decode(errors="replace") for d in group], error)
    return len(deliveries)


def _key_text(key: object) -> str:
    try:
        return json.dumps(key, sort_keys=True, default=str)
    except (TypeError, ValueError):
        return repr(key)


DESCRIBED = [("processed", "tasks finished (written or nothing to write)"),
             ("written", "rows whose vector was written"),
             ("skipped", "tasks finished without a write (unchanged, gone, superseded)"),
             ("retried", "tasks given back for another attempt"),
             ("dead_lettered", "tasks sent to the dead-letter queue"),
             ("errors", "outages a batch was held through (database, provider, broker)"),
             ("batches", "batches processed")]


def counter_samples(stats: Mapping[str, Counters]) -> list[Sample]:
    """Prometheus samples of every pipeline's counters (see `v10r.ops.metrics`)."""
    return [Sample(f"worker_{name}_total", getattr(s, name), text, labels=(("pipeline", p),))
            for name, text in DESCRIBED for p, s in sorted(stats.items())]
