"""The README's promises about set-up: two commands, and CI runs exactly the second."""

from __future__ import annotations

import re

from tests.docs.doc_blocks import ROOT


def test_the_readme_gives_one_demo_command_and_one_test_command() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "```sh\nmake demo\n```" in readme
    assert "```sh\nmake test\n```" in readme


def test_ci_runs_the_readme_test_command() -> None:
    ci = (ROOT / ".ci" / "run").read_text()
    commands = [line for line in ci.splitlines() if line and not line.startswith(("#", "set ", "cd "))]
    assert commands == ["exec make test"]


def test_make_test_refuses_to_pass_on_zero_tests() -> None:
    script = (ROOT / "scripts" / "test.sh").read_text()
    assert re.search(r'if \[ "\$status" -eq 5 \]; then\n.*\n\s+exit 1', script)
