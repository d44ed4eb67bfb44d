"""v10r keeps pgvector embeddings of PostgreSQL text columns in sync, from YAML specs."""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    # `faust -A v10r worker` looks up `v10r.app`; build it lazily so that importing
    # v10r for the CLI or as a library never pulls in Faust.
    if name == "app":
        from v10r.faust_app import app

        return app
    raise AttributeError(f"module 'v10r' has no attribute {name!r}")
