"""Preprocessing: how a row's raw columns become the text that is hashed and embedded."""

from __future__ import annotations

from typing import Any

import pytest

from v10r.preprocess import (
    compose_text,
    fix_surrogates,
    normalize_whitespace,
    preprocess,
    strip_html,
)
from v10r.spec.model import Pipeline

pytestmark = pytest.mark.unit


def make_pipeline(columns: list[str] | None = None, template: str | None = None,
                  max_input_chars: int = 32_000, **preprocess_options: Any) -> Pipeline:
    return Pipeline(
        name="docs",
        source={"table": "public.docs", "columns": columns or ["body"], "template": template},
        preprocess=preprocess_options,
        embedding={"provider": "local", "max_input_chars": max_input_chars},
    )


@pytest.mark.parametrize(("columns", "template", "values", "expected"), [
    (["body"], None, {"body": "hello"}, "hello"),
    (["body"], None, {"body": None}, ""),
    (["body"], None, {}, ""),
    (["title", "body"], None, {"title": "T", "body": "B"}, "T\n\nB"),
    (["title", "body"], None, {"title": None, "body": "B"}, "B"),
    (["title", "body"], None, {"title": "  ", "body": "B"}, "B"),
    (["title", "body"], None, {"title": "T", "body": ""}, "T"),
    (["title", "body"], "{title}: {body}", {"title": "T", "body": "B"}, "T: B"),
    (["title", "body"], "{title}: {body}", {"title": None, "body": "B"}, ": B"),
    (["title", "body"], "{body} / {body}", {"title": "T", "body": "B"}, "B / B"),
    (["title", "body"], "{{literal}} {title}", {"title": "T", "body": "B"}, "{literal} T"),
    (["title"], "{title}", {"title": "{body}"}, "{body}"),  # values are not re-formatted
], ids=lambda v: repr(v)[:30])
def test_compose_text(columns: list[str], template: str | None,
                      values: dict[str, str | None], expected: str) -> None:
    assert compose_text(make_pipeline(columns, template), values) == expected


@pytest.mark.parametrize(("html", "expected"), [
    ("plain text", "plain text"),
    ("<b>bo</b>ld", "bold"),
    ("<p>Hello</p><p>world</p>", "\nHello\n\nworld\n"),
    ("a<br>b", "a\nb"),
    ("a<br/>b", "a\nb"),
    ("<li>one</li><li>two</li>", "\none\n\ntwo\n"),
    ("<script>alert(1)</script>hi", "hi"),
    ("<SCRIPT type='x'>alert(1)</SCRIPT>hi", "hi"),
    ("<style>p { color: red }</style>text", "text"),
    ("a<style>unclosed", "a"),
    ("x &amp; y &lt;p&gt; &quot;q&quot; &#233; &#x263A;", 'x & y <p> "q" é ☺'),
    ("&nbsp;x", "\xa0x"),
    ("a &unknown; b", "a &unknown; b"),
    ("a < b and c > d", "a < b and c > d"),
    ("1<2", "1<2"),
    ("x <!-- hidden --> y", "x  y"),
    ('<a href="http://e.x/?a=1&amp;b=2">link</a>', "link"),
    ("<div><span>in</span>line</div>", "\ninline\n"),
    ("", ""),
], ids=lambda v: repr(v)[:30])
def test_strip_html(html: str, expected: str) -> None:
    assert strip_html(html) == expected


@pytest.mark.parametrize(("text", "expected"), [
    ("  a  b  ", "a b"),
    ("a\n\n\tb\r\nc", "a b c"),
    ("a\u00a0\u2003b", "a b"),  # Unicode spaces too
    ("a\x1c\u2028\u3000\x85b", "a b"),  # separators and NEL count as whitespace
    ("", ""),
    ("   ", ""),
])
def test_normalize_whitespace(text: str, expected: str) -> None:
    assert normalize_whitespace(text) == expected


@pytest.mark.parametrize(("text", "expected"), [
    ("plain", "plain"),
    ("a\ud800b", "a\ufffdb"),
    ("a\udfffb", "a\ufffdb"),  # noqa: PT014 - differs from the case above
    ("\ud83d\ude00", "😀"),  # a valid pair, split in two code points, is joined
    ("x\ud83d", "x\ufffd"),
    ("😀", "😀"),
])
def test_fix_surrogates_makes_text_utf8_encodable(text: str, expected: str) -> None:
    fixed = fix_surrogates(text)
    assert fixed == expected
    fixed.encode("utf-8")  # never raises


@pytest.mark.parametrize(("options", "values", "expected"), [
    ({}, {"body": "  Hello \n world  "}, "Hello world"),
    ({"normalize_whitespace": False}, {"body": "  a \n b "}, "  a \n b "),
    ({"strip_html": True}, {"body": "<p>Hello</p><p>world</p>"}, "Hello world"),
    ({"strip_html": True, "normalize_whitespace": False}, {"body": "<b>x</b>"}, "x"),
    ({"strip_html": True}, {"body": "<script>only code</script>"}, ""),
    ({"max_chars": 5}, {"body": "abcdefgh"}, "abcde"),
    ({"max_chars": 4}, {"body": "abc defgh"}, "abc"),  # no trailing space after the cut
    ({"max_tokens": 2}, {"body": "abcdefghijkl"}, "abcdefgh"),  # ≈ 4 chars per token
    ({"max_tokens": 100, "max_chars": 3}, {"body": "abcdef"}, "abc"),  # smallest limit wins
    ({}, {"body": "a\ud800b"}, "a\ufffdb"),
    ({}, {"body": None}, ""),
], ids=lambda v: repr(v)[:40])
def test_preprocess(options: dict[str, Any], values: dict[str, str | None], expected: str) -> None:
    assert preprocess(make_pipeline(**options), values) == expected


def test_preprocess_strips_html_per_column_so_empty_columns_are_left_out() -> None:
    pipeline = make_pipeline(["title", "body"], strip_html=True, normalize_whitespace=False)
    assert preprocess(pipeline, {"title": "<br>", "body": "<i>B</i>"}) == "B"


def test_preprocess_keeps_the_template_text_itself() -> None:
    pipeline = make_pipeline(["title", "body"], "<{title}>", strip_html=True)
    assert preprocess(pipeline, {"title": "<b>T</b>", "body": "x"}) == "<T>"


@pytest.mark.parametrize(("spec_limit", "provider_limit", "expected"), [
    (10, None, "abcdefghij"),
    (10, 3, "abc"),
    (3, 10, "abc"),
])
def test_preprocess_truncates_to_the_smaller_input_limit(
        spec_limit: int, provider_limit: int | None, expected: str) -> None:
    pipeline = make_pipeline(max_input_chars=spec_limit)
    text = preprocess(pipeline, {"body": "abcdefghijklmnop"}, max_input_chars=provider_limit)
    assert text == expected


def test_preprocess_is_deterministic_for_the_same_input() -> None:
    pipeline = make_pipeline(["title", "body"], strip_html=True, max_chars=50)
    values = {"title": "<h1>Title</h1>", "body": "Some &amp; body " * 10}
    assert preprocess(pipeline, values) == preprocess(pipeline, dict(values))
