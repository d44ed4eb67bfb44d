"""Every runnable example in docs/ prints what the docs say it prints, and every error
message the docs explain still exists in the code."""

from __future__ import annotations

import ast
import os
import re
import shlex
import subprocess
import sys
from functools import cache
from pathlib import Path

import pytest

from tests.docs.doc_blocks import ROOT, Example, blocks, console_examples, matches

VENV_BIN = Path(sys.executable).parent

# Runnable examples need no service: they may only be these commands. Anything that
# needs a database, broker or provider belongs in a ```sh block (never run).
NO_SERVICE = (
    re.compile(r"^v10r (--version|--help|schema|validate\b.*|\S+ --help)$"),
)


def _without_assignments(command: str) -> tuple[dict[str, str], str]:
    words = shlex.split(command)
    env = {}
    while words and re.match(r"^[A-Z_][A-Z0-9_]*=", words[0]):
        name, _, value = words.pop(0).partition("=")
        env[name] = value
    return env, shlex.join(words)


def test_the_docs_have_runnable_examples() -> None:
    assert len(console_examples()) >= 5


@pytest.mark.parametrize("example", console_examples(), ids=str)
def test_runnable_example_needs_no_service(example: Example) -> None:
    _, command = _without_assignments(example.command)
    assert any(p.match(command) for p in NO_SERVICE), (
        f"{example} may need a service: show it in a ```sh block instead of ```console")


@pytest.mark.parametrize("example", console_examples(), ids=str)
def test_runnable_example_prints_what_the_docs_show(example: Example) -> None:
    assignments, _ = _without_assignments(example.command)
    env = {"PATH": f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}", "HOME": str(ROOT),
           "LANG": "C.UTF-8", "COLUMNS": "100", **assignments}
    result = subprocess.run(["bash", "-c", example.command], cwd=ROOT, env=env, check=False, timeout=60,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    actual = result.stdout.rstrip("\n").split("\n") if result.stdout.strip() else []
    assert "Traceback" not in result.stdout
    assert matches(example.expected, actual), (
        f"{example}\n--- docs show:\n" + "\n".join(example.expected)
        + "\n--- it prints:\n" + result.stdout)


@cache
def _code_strings() -> list[str]:
    """Every string literal in v10r/, f-string placeholders as `<>`."""
    texts = []
    for path in sorted((ROOT / "v10r").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                texts.append(node.value)
            elif isinstance(node, ast.JoinedStr):
                texts.append("".join(v.value if isinstance(v, ast.Constant) else "<>"
                                     for v in node.values))
    return texts


def _in_code(message: str) -> bool:
    pieces = [p for p in re.split(r"<[^>]*>", message) if p.strip()]
    for text in _code_strings():
        position = 0
        for piece in pieces:
            position = text.find(piece, position)
            if position < 0:
                break
            position += len(piece)
        else:
            return True
    return False


@pytest.mark.parametrize("message", [body.strip() for _, body in blocks("message")])
def test_documented_error_message_exists_in_the_code(message: str) -> None:
    assert _in_code(message), f"no raise site says {message!r}; update docs/troubleshooting.md"
