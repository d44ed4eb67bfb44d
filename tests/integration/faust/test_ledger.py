"""The Faust dedup ledger: one table entry per batch (not per row), bounded, and
rebuilt from the table after a restart recovers it."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from v10r.stream.runtime import TableLedger

pytestmark = pytest.mark.unit


class ChangelogTable(dict):
    """A stand-in for a Faust table: every assignment is one changelog record."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.writes = 0
        self.recover: list[Callable[[], Awaitable[None]]] = []

    def __setitem__(self, key: str, value: Any) -> None:
        self.writes += 1
        super().__setitem__(key, value)

    def on_recover(self, fun: Callable[[], Awaitable[None]]) -> None:
        self.recover.append(fun)


def test_a_batch_is_one_changelog_record_whatever_its_size() -> None:
    table = ChangelogTable()
    ledger = TableLedger(table)
    ledger.record([str(i) for i in range(500)], 10.0)
    ledger.record(["1", "7"], 12.0)
    ledger.record([], 13.0)  # nothing fetched: nothing written
    assert table.writes == 2
    assert (ledger.last_fetch("1"), ledger.last_fetch("3"), ledger.last_fetch("x")) == (
        12.0, 10.0, 0.0)


def test_an_older_fetch_never_hides_a_newer_one() -> None:
    ledger = TableLedger(ChangelogTable())
    ledger.record(["a"], 20.0)
    ledger.record(["a"], 15.0)  # a slower batch finishing late
    assert ledger.last_fetch("a") == 20.0


def test_the_ledger_is_bounded_and_forgets_only_what_was_overwritten() -> None:
    table = ChangelogTable()
    ledger = TableLedger(table, slots=3)
    for n in range(10):
        ledger.record([f"row{n}", "shared"], float(n))
    assert len(table) == 3 and len(ledger._index) == 4  # three batches' rows + shared
    assert ledger.last_fetch("row0") == 0.0 and ledger.last_fetch("row9") == 9.0
    assert ledger.last_fetch("shared") == 9.0


def test_a_restarted_worker_rebuilds_the_index_from_the_recovered_table() -> None:
    table = ChangelogTable()
    TableLedger(table).record(["5", "6"], 30.0)
    recovered = ChangelogTable(dict(table))
    again = TableLedger(recovered)
    assert again.last_fetch("5") == 30.0

    recovered["999"] = {"at": 40.0, "keys": ["8"]}  # the changelog replayed after start
    asyncio.run(recovered.recover[0]())
    assert again.last_fetch("8") == 40.0


@pytest.mark.parametrize("entry", [None, 3, "text", {"keys": None}, {"at": "soon"},
                                   {"at": 1.0, "keys": [1, 2]}, {"at": True, "keys": ["k"]},
                                   {"at": float("inf"), "keys": ["k"]},
                                   {"at": float("nan"), "keys": ["k"]},
                                   {"at": 1e12, "keys": ["k"]}])  # a fetch in the future
def test_a_malformed_entry_in_the_table_is_ignored_not_fatal(entry: Any) -> None:
    ledger = TableLedger(ChangelogTable({"0": entry, "1": {"at": 5.0, "keys": ["k"]}}))
    assert ledger.last_fetch("k") == 5.0
    ledger.record(["k"], 6.0)
    assert ledger.last_fetch("k") == 6.0
