"""Located diagnostics: what is wrong, where (file:line:col), and how to fix it.

Loaders collect these instead of raising, so one run reports every problem in every
file; reporters render them as text (`file:line:col: error: message`) or JSON.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace
from typing import Literal

Level = Literal["error", "warning"]


@dataclass(frozen=True, slots=True)
class Diagnostic:
    file: str
    line: int
    col: int
    level: Level
    message: str
    rule: str
    path: str = ""
    hint: str | None = None
    pipeline: str | None = None

    def render(self) -> str:
        text = f"{self.file}:{self.line}:{self.col}: {self.level}: {self.message} ({self.rule})"
        return f"{text}\n  hint: {self.hint}" if self.hint else text


def render_text(diagnostics: list[Diagnostic]) -> str:
    return "\n".join(d.render() for d in diagnostics)


def render_json(diagnostics: list[Diagnostic], files: list[str], pipelines: int) -> str:
    errors = sum(d.level == "error" for d in diagnostics)
    return json.dumps(
        {
            "valid": errors == 0,
            "files": files,
            "pipelines": pipelines,
            "errors": errors,
            "warnings": len(diagnostics) - errors,
            "diagnostics": [asdict(d) for d in diagnostics],
        },
        indent=2,
    )


def render_github(diagnostics: list[Diagnostic]) -> str:
    """GitHub Actions workflow commands, so errors show inline on the pull request.

    Escaped as GitHub's toolkit does: `%`, CR and LF in the message; also `:` and `,` in
    properties (a file named `a,b:c.yaml` must not end the `file=` property early).
    """
    return "\n".join(
        f"::{d.level} file={_property(d.file)},line={d.line},col={d.col},"
        f"title={_property(f'v10r {d.rule}')}::"
        + _data(d.message + (f" (hint: {d.hint})" if d.hint else ""))
        for d in diagnostics
    )


def _data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _property(text: str) -> str:
    return _data(text).replace(":", "%3A").replace(",", "%2C")


def as_errors(diagnostics: list[Diagnostic]) -> list[Diagnostic]:
    """Every diagnostic at level error (`--strict`: a warning fails, so it is an error)."""
    return [replace(d, level="error") for d in diagnostics]
