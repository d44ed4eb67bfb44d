"""Golden SQL of the objects compiled for the example pipelines.

Regenerate after an intended change with `V10R_UPDATE_GOLDEN=1 pytest tests/unit` and
review the diff like code.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from v10r.compile import ddl
from v10r.spec.load import load_pipelines

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = Path(__file__).with_name("golden")
EXAMPLES = sorted((ROOT / "pipelines").glob("*.yaml"))


def compiled_sql(path: Path) -> str:
    parts = []
    for pipeline in load_pipelines([path]):
        c = ddl.compile_pipeline(pipeline)
        parts.append(f"-- pipeline {c.name}: fingerprint {c.fingerprint}, "
                     f"definition {c.definition_hash}")
        parts += [f"-- column {col.name} {col.type}" for col in c.columns]
        if c.index:
            parts.append(c.index.create_sql(c.names.qualified_table) + ";")
        parts += [t.sql + ";" for t in ddl.table_triggers([c])]
    return "\n".join(parts) + "\n"


def check_golden(name: str, actual: str) -> None:
    path = GOLDEN / name
    if os.environ.get("V10R_UPDATE_GOLDEN") == "1":
        path.write_text(actual)
    assert path.exists(), f"{path} is missing: run with V10R_UPDATE_GOLDEN=1"
    assert actual == path.read_text()


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_example_pipeline_compiles_to_its_golden_sql(path: Path) -> None:
    check_golden(f"{path.stem}.sql", compiled_sql(path))


def test_shared_objects_compile_to_their_golden_sql() -> None:
    shared = "\n".join([ddl.create_schema_sql() + ";", ddl.bookkeeping_sql() + ";",
                        ddl.notify_function_sql() + ";"])
    check_golden("v10r_schema.sql", shared + "\n")
