"""Fenced blocks of the docs, as the doc tests read them.

```console blocks hold runnable examples: `$ command` lines, each followed by the output
it prints (a line `...` stands for any number of lines). ```message blocks quote an
error message, with `<…>` for the parts that vary. Examples that need a database, a
broker or a provider go in ```sh blocks, which are never run.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
_FENCE = re.compile(r"^```(\w*)\n(.*?)^```$", re.MULTILINE | re.DOTALL)


@dataclass(frozen=True)
class Example:
    page: str
    command: str
    expected: list[str]

    def __str__(self) -> str:
        return f"{self.page}: $ {self.command}"


def blocks(kind: str) -> list[tuple[str, str]]:
    """(page, body) of every fenced block of this kind in README.md and docs/*.md."""
    found = []
    for page in [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]:
        for match in _FENCE.finditer(page.read_text()):
            if match.group(1) == kind:
                found.append((page.name, match.group(2)))
    return found


def console_examples() -> list[Example]:
    examples: list[Example] = []
    for page, body in blocks("console"):
        for chunk in re.split(r"^\$ ", body, flags=re.MULTILINE)[1:]:
            command, *output = chunk.rstrip("\n").split("\n")
            examples.append(Example(page, command, output))
    return examples


def matches(expected: list[str], actual: list[str]) -> bool:
    """Line-by-line equality, where an expected `...` line matches zero or more lines."""
    if not expected:
        return not actual
    if expected[0] == "...":
        return any(matches(expected[1:], actual[i:]) for i in range(len(actual) + 1))
    return bool(actual) and actual[0] == expected[0] and matches(expected[1:], actual[1:])
