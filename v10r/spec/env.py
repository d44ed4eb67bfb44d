"""`${VAR}` expansion, done at the last moment so that specs, plans and logs only ever
show the reference, never the secret behind it.

An empty (or blank) variable counts as unset: `DATABASE_URL=` must not expand to an
empty DSN, which libpq would happily read as "the default local server".
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping

from v10r.errors import EnvError

_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def references(value: str) -> list[str]:
    """Names of the variables a string refers to without a default."""
    return [m.group(1) for m in _REFERENCE.finditer(value) if m.group(2) is None]


def value_of(name: str, environ: Mapping[str, str] | None = None) -> str | None:
    """The variable's value, or None when it is unset, empty or only whitespace."""
    value = (os.environ if environ is None else environ).get(name)
    return value if value and value.strip() else None


def missing(value: str, environ: Mapping[str, str] | None = None) -> list[str]:
    return [name for name in references(value) if value_of(name, environ) is None]


def expand(value: str, environ: Mapping[str, str] | None = None, *, what: str = "value",
           pipeline: str | None = None) -> str:
    """Replace `${VAR}` and `${VAR:-default}`; an unset or empty variable without default
    is an error naming the variable and the spec field that needs it."""
    env = os.environ if environ is None else environ

    def substitute(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        found = value_of(name, env)
        if found is not None:
            return found
        if default is not None:
            return default
        state = "is empty" if name in env else "is not set"
        raise EnvError(
            f"environment variable {name} {state} (needed by `{what}`)",
            pipeline=pipeline,
            hint=f"export {name}=... (not empty) before running v10r, or put it in the "
            "service's environment",
        )

    return _REFERENCE.sub(substitute, value)
