"""The generated reference pages match the code: regenerating them changes nothing."""

from __future__ import annotations

import subprocess
import sys

from tests.docs.doc_blocks import ROOT


def test_generated_reference_pages_are_up_to_date() -> None:
    result = subprocess.run([sys.executable, "scripts/gen_docs.py", "--check"], cwd=ROOT,
                            capture_output=True, text=True, check=False, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def test_spec_reference_documents_every_key_of_the_schema() -> None:
    from v10r.spec.model import json_schema

    schema = json_schema()
    page = (ROOT / "docs" / "spec-reference.md").read_text()
    for name, definition in [("", schema), *schema["$defs"].items()]:
        for key in definition.get("properties", {}):
            assert f".{key}`" in page or f"`{key}`" in page, f"{name}.{key} is not documented"
