"""Text clean-up before hashing and embedding: pure, deterministic, no I/O.

The stored hash folds in the preprocessing settings (see `compile.content_hash`), so
this function must give the same output for the same input and spec forever; change
its behaviour only together with `FINGERPRINT_VERSION`.
"""

from __future__ import annotations

from collections.abc import Mapping
from html.parser import HTMLParser

from v10r.spec.model import Pipeline

CHARS_PER_TOKEN = 4  # the usual estimate for English text with BPE tokenizers
COLUMN_SEPARATOR = "\n\n"


# Skipped with their content: never visible text.
_INVISIBLE_TAGS = frozenset({"script", "style", "noscript", "template"})
# Tags that separate words when rendered; they become whitespace.
_BLOCK_TAGS = frozenset({
    "address", "article", "aside", "blockquote", "br", "dd", "details", "dialog", "div",
    "dl", "dt", "fieldset", "figcaption", "figure", "footer", "form", "h1", "h2", "h3",
    "h4", "h5", "h6", "header", "hr", "li", "main", "nav", "ol", "p", "pre", "section",
    "summary", "table", "tbody", "td", "tfoot", "th", "thead", "tr", "ul", "body", "html",
    "img", "option", "caption",
})


def preprocess(pipeline: Pipeline, values: Mapping[str, str | None], *,
               max_input_chars: int | None = None) -> str:
    """The text to embed for one row: compose, clean, truncate.

    `max_input_chars` is the provider's limit; the pipeline's own
    `embedding.max_input_chars` applies too, whichever is smaller.
    """
    options = pipeline.preprocess
    if options.strip_html:
        values = {name: None if v is None else strip_html(v) for name, v in values.items()}
    text = fix_surrogates(compose_text(pipeline, values))
    if options.normalize_whitespace:
        text = normalize_whitespace(text)
    limit = _char_limit(pipeline, max_input_chars)
    if len(text) > limit:
        text = text[:limit]
        if options.normalize_whitespace:
            text = text.rstrip()
    return text


def _char_limit(pipeline: Pipeline, provider_limit: int | None) -> int:
    limits = [pipeline.embedding.max_input_chars]
    if pipeline.preprocess.max_chars is not None:
        limits.append(pipeline.preprocess.max_chars)
    if pipeline.preprocess.max_tokens is not None:
        limits.append(pipeline.preprocess.max_tokens * CHARS_PER_TOKEN)
    if provider_limit is not None:
        limits.append(provider_limit)
    return min(limits)


def compose_text(pipeline: Pipeline, values: Mapping[str, str | None]) -> str:
    """One text from the row's columns: the template, or the non-empty columns joined
    by a blank line. NULL (or a missing column) counts as the empty string."""
    columns = pipeline.source.columns
    template = pipeline.source.template
    if template is not None:
        return template.format_map({c: values.get(c) or "" for c in columns})
    parts = [v for c in columns if (v := values.get(c)) is not None and v.strip()]
    return COLUMN_SEPARATOR.join(parts)


def normalize_whitespace(text: str) -> str:
    """Runs of whitespace (any Unicode space, tabs, newlines) become one space; trimmed."""
    return " ".join(text.split())  # str.split() splits on exactly the characters of `\s`


def fix_surrogates(text: str) -> str:
    """Lone UTF-16 surrogates (from broken JSON or drivers) become U+FFFD, so the text
    always encodes as UTF-8; valid surrogate pairs are joined into their character."""
    try:
        text.encode("utf-8")  # fast path: a text without surrogates encodes
        return text
    except UnicodeEncodeError:
        pass
    return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")


def strip_html(text: str) -> str:
    """Visible text of an HTML fragment: tags removed, entities unescaped, script and
    style content dropped, block tags turned into line breaks."""
    if "<" not in text and "&" not in text:
        return text
    parser = _TextExtractor()
    parser.feed(text)
    parser.close()
    return "".join(parser.parts)


class _TextExtractor(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._hidden = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _INVISIBLE_TAGS:
            self._hidden += 1
        elif tag in _BLOCK_TAGS:
            self.parts.append("\n")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _BLOCK_TAGS:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in _INVISIBLE_TAGS:
            self._hidden = max(0, self._hidden - 1)
        elif tag in _BLOCK_TAGS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self._hidden:
            self.parts.append(data)
