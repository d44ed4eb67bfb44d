"""Every bad spec in tests/specs/bad gets the exact error at the exact place.

Each file states what it expects in its leading comments:
`# expect: LINE:COL fragment | another fragment` (one line per diagnostic) and
`# never: text` for text (a secret) that must not appear in any output.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from v10r.spec.load import load_paths

SPECS = Path(__file__).resolve().parent.parent / "specs"
BAD = sorted((SPECS / "bad").glob("*.yaml"))
EXPECT = re.compile(r"^# expect: (\d+):(\d+) (.+)$", re.MULTILINE)
NEVER = re.compile(r"^# never: (.+)$", re.MULTILINE)

pytestmark = pytest.mark.unit


def test_the_corpus_is_large_enough() -> None:
    assert len(BAD) >= 30


@pytest.mark.parametrize("path", BAD, ids=[p.stem for p in BAD])
def test_bad_spec_reports_exact_location_and_message(path: Path) -> None:
    text = path.read_text()
    expected = [(int(line), int(col), [f.strip() for f in fragments.split("|")])
                for line, col, fragments in EXPECT.findall(text)]
    assert expected, f"{path.name} states no expectation"

    result = load_paths([path], environ={})
    errors = result.errors
    assert not result.pipelines
    rendered = "\n".join(d.render() for d in result.diagnostics)
    for line, col, fragments in expected:
        at = [d for d in errors if (d.line, d.col) == (line, col)]
        assert at, f"no error at {line}:{col}; got:\n{rendered}"
        text_at = "\n".join(d.render() for d in at)
        for fragment in fragments:
            assert fragment in text_at, f"{fragment!r} not in:\n{text_at}"
    for secret in NEVER.findall(text):
        assert secret not in rendered


def test_every_error_names_its_file_and_rule() -> None:
    result = load_paths([SPECS / "bad"], environ={})
    for diagnostic in result.errors:
        assert diagnostic.file.endswith(".yaml") and diagnostic.rule
        assert diagnostic.render().startswith(f"{diagnostic.file}:{diagnostic.line}:{diagnostic.col}: error: ")


def test_one_run_reports_errors_of_every_file() -> None:
    result = load_paths([SPECS / "bad"], environ={})
    assert {Path(d.file).name for d in result.errors} == {p.name for p in BAD}


def test_duplicate_pipeline_names_and_targets_across_files() -> None:
    result = load_paths([SPECS / "duplicates"], environ={})
    messages = [d.render() for d in result.errors]
    assert any("b.yaml:1:7" in m and "pipeline name `docs` is already used in" in m and "a.yaml" in m
               for m in messages), messages
    assert any("both write column `body_embedding` of docs" in m for m in messages), messages
