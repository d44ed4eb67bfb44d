"""Which spec set a pipeline belongs to, so `--prune` only removes its own.

Several teams (or several `v10r apply` invocations) may share one database. Each applied
pipeline records the spec file it came from (`v10r.pipelines.spec_source`, an absolute
path). An apply covers the files and directories it was given: `--prune` removes a
pipeline that is no longer in the specs only when its recorded file lies under one of
them. Everything else belongs to another spec set and is left alone.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class SpecSet:
    """`sources`: pipeline name → its spec file. `roots`: the paths given to the command;
    None when a program calls the API without files (it vouches for every pipeline)."""

    sources: Mapping[str, str] = field(default_factory=dict)
    roots: tuple[str, ...] | None = None

    @classmethod
    def of(cls, roots: Iterable[str], sources: Mapping[str, str]) -> SpecSet:
        return cls({name: _absolute(path) for name, path in sources.items()},
                   tuple(_absolute(r) for r in roots))

    def source(self, pipeline: str) -> str | None:
        return self.sources.get(pipeline)

    def owns(self, recorded_source: str | None) -> bool:
        """Whether a pipeline applied from `recorded_source` is this set's to prune."""
        if self.roots is None:
            return True
        if recorded_source is None:
            return False
        return any(recorded_source == root or recorded_source.startswith(root + os.sep)
                   for root in self.roots)

    def describe(self) -> str:
        return ", ".join(self.roots or ()) or "the given pipelines"


def _absolute(path: str) -> str:
    return os.path.normpath(os.path.abspath(path))
