"""Identifiers and literals from specs can never break out of their quotes."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from v10r.spec.identifiers import (
    IdentifierError,
    derive_name,
    quote_ident,
    quote_literal,
    split_qualified,
)

pytestmark = pytest.mark.unit
names = st.text(st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)),
                min_size=1, max_size=20)


@given(names)
def test_quoted_identifier_round_trips(name: str) -> None:
    quoted = quote_ident(name)
    assert quoted.startswith('"') and quoted.endswith('"')
    inner = quoted[1:-1]
    assert inner.replace('""', "") .count('"') == 0  # every quote inside is doubled
    assert inner.replace('""', '"') == name


@given(st.text(st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",))))
def test_quoted_literal_round_trips(value: str) -> None:
    quoted = quote_literal(value)
    body = quoted[2:-1] if quoted.startswith("E'") else quoted[1:-1]
    assert body.replace("''", "").count("'") == 0
    if quoted.startswith("E'"):
        body = body.replace("\\\\", "\\")
    assert body.replace("''", "'") == value


@given(names, names)
def test_split_qualified_inverts_quoting(schema: str, table: str) -> None:
    if len(schema.encode()) > 63 or len(table.encode()) > 63:
        return
    assert split_qualified(f"{quote_ident(schema)}.{quote_ident(table)}") == (schema, table)


@pytest.mark.parametrize(("raw", "expected"), [
    ("docs", ("public", "docs")),
    ("shop.products", ("shop", "products")),
    ('"My Schema"."My ""Docs"""', ("My Schema", 'My "Docs"')),
    ('"a.b".c', ("a.b", "c")),
    ("Mixed.Case", ("Mixed", "Case")),
    ("ünï.cødé", ("ünï", "cødé")),
])
def test_split_qualified(raw: str, expected: tuple[str, str]) -> None:
    assert split_qualified(raw) == expected


@pytest.mark.parametrize("raw", ["a.b.c", "a.", ".a", '"unterminated', '"a"x.b', "", "x" * 64])
def test_split_qualified_rejects(raw: str) -> None:
    with pytest.raises(IdentifierError):
        split_qualified(raw)


@pytest.mark.parametrize("bad", ["", "a\x00b", "é" * 32])
def test_quote_ident_rejects_what_postgres_cannot_store(bad: str) -> None:
    with pytest.raises(IdentifierError):
        quote_ident(bad)


@given(st.text(min_size=1, max_size=100).filter(lambda s: "\x00" not in s), st.sampled_from(
    ["_embedding", "_embedding_hash", "_notify_v10r"]))
def test_derived_names_fit_63_bytes_and_are_stable(base: str, suffix: str) -> None:
    try:
        base.encode("utf-8")
    except UnicodeEncodeError:
        return
    name = derive_name(base, suffix)
    assert len(name.encode("utf-8")) <= 63
    assert name.endswith(suffix)
    assert name == derive_name(base, suffix)


def test_long_names_that_share_a_prefix_stay_distinct() -> None:
    a, b = "x" * 70 + "a", "x" * 70 + "b"
    assert derive_name(a, "_embedding") != derive_name(b, "_embedding")
