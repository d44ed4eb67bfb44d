"""Located diagnostics: what is wrong, where (file:line:col), and how to fix it.

Loaders collect these instead of raising, so one run reports every problem in every
file; reporters render them as text (`file:line:col: error: message`) or JSON.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
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
    """GitHub Actions workflow commands, so errors show inline on the pull request."""
    return "\n".join(
        f"::{d.level} file={d.file},line={d.line},col={d.col},title=v10r {d.rule}::"
        f"{d.message}" + (f" (hint: {d.hint})" if d.hint else "")
        for d in diagnostics
    )
