"""`${VAR}` expansion, done at the last moment so that specs, plans and logs only ever
show the reference, never the secret behind it."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping

from v10r.errors import EnvError

_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def references(value: str) -> list[str]:
    """Names of the variables a string refers to without a default."""
    return [m.group(1) for m in _REFERENCE.finditer(value) if m.group(2) is None]


def missing(value: str, environ: Mapping[str, str] | None = None) -> list[str]:
    env = os.environ if environ is None else environ
    return [name for name in references(value) if name not in env]


def expand(value: str, environ: Mapping[str, str] | None = None, *, what: str = "value",
           pipeline: str | None = None) -> str:
    """Replace `${VAR}` and `${VAR:-default}`; an unset variable without default is an error."""
    env = os.environ if environ is None else environ

    def substitute(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        if name in env:
            return env[name]
        if default is not None:
            return default
        raise EnvError(
            f"environment variable {name} is not set (needed by {what})",
            pipeline=pipeline,
            hint=f"export {name}=... before running v10r, or put it in the service's environment",
        )

    return _REFERENCE.sub(substitute, value)
