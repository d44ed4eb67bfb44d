"""Pure pieces of ownership: the marker format, the spec-set scope of `--prune`, and the
approval check `apply` runs under its lock."""

from __future__ import annotations

import os

import pytest

from v10r.compile.names import marker, next_column, parse_marker, retired_column
from v10r.errors import PlanError
from v10r.reconcile import ops
from v10r.reconcile.apply import check_approved
from v10r.reconcile.specset import SpecSet

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("comment, parsed", [
    ("v10r:docs:embedding", ("docs", "embedding")),
    ("v10r:docs:retired", ("docs", "retired")),
    (None, None), ("", None), ("user note", None), ("v10r:", None), ("v10r:docs", None),
    ("v10r::embedding", None), ("v10r:docs:embedding:extra", None), ("V10R:docs:x", None),
])
def test_only_exact_markers_parse(comment, parsed) -> None:
    assert parse_marker(comment) == parsed


def test_marker_round_trips_and_derived_names_fit_63_bytes() -> None:
    assert parse_marker(marker("p_1", "hash")) == ("p_1", "hash")
    long = "x" * 63
    assert len(next_column(long).encode()) <= 63 and len(retired_column(long, 7)) <= 63
    assert retired_column("e", 1) == "e_v10r_old" and retired_column("e", 2) == "e_v10r_old2"


def test_a_spec_set_owns_only_files_under_its_paths(tmp_path) -> None:
    root = tmp_path / "pipelines"
    spec_set = SpecSet.of([str(root)], {"a": str(root / "a.yaml")})
    assert spec_set.source("a") == os.path.normpath(root / "a.yaml")
    assert spec_set.owns(str(root / "gone.yaml")) and spec_set.owns(str(root / "sub/x.yaml"))
    assert not spec_set.owns(str(tmp_path / "pipelines-other" / "x.yaml"))  # prefix, not dir
    assert not spec_set.owns(None)  # applied before spec files were recorded
    one = SpecSet.of([str(root / "a.yaml")], {})
    assert one.owns(str(root / "a.yaml")) and not one.owns(str(root / "b.yaml"))
    assert SpecSet().owns(None)  # a program's own apply vouches for its pipelines


def test_relative_paths_are_made_absolute(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    spec_set = SpecSet.of(["pipelines/"], {"a": "pipelines/./a.yaml"})
    assert spec_set.owns(str(tmp_path / "pipelines" / "a.yaml"))
    assert spec_set.source("a") == str(tmp_path / "pipelines" / "a.yaml")


def test_only_the_confirmed_destructive_operations_may_run() -> None:
    drop = ops.DropColumn("public", "docs", "e", pipeline="p")
    other = ops.DropColumn("public", "docs", "f", pipeline="p")
    safe = ops.AddColumn("public", "docs", "g", "text", "v10r:p:note", pipeline="p")
    check_approved([safe], False)
    check_approved([drop, other], True)
    check_approved([drop, safe], frozenset({drop.describe()}))
    with pytest.raises(PlanError, match="drop column public.docs.f"):
        check_approved([drop, other], frozenset({drop.describe()}))
    with pytest.raises(PlanError, match="not confirmed"):
        check_approved([drop], False)
