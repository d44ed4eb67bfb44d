"""Text v10r does not control — table and column names, errors from a provider or the
database — is printed as written: rich markup in it neither crashes nor styles the
output, and terminal control sequences never reach the terminal."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import asyncpg
import pytest

from tests.e2e.test_cli_worker import (  # noqa: F401 - fixtures
    Setup,
    eventually,
    http_server,
    run_cli,
    seed,
    setup,
    start_cli,
    stop_cli,
)
from tests.services.openai_server import Reply

pytestmark = [pytest.mark.e2e]

ROOT = Path(__file__).resolve().parents[2]
CONTROL = ("\x1b", "\x9b", "\x07", "\r", "\u202e")
HOSTILE = "boom \x1b[2J\x1b]0;owned\x07 [bold]x[/] \r\x9bZ \u202e [/]"

SPEC = """\
name: odd
database: {{dsn: "${{DATABASE_URL}}"}}
source: {{table: "{table}", columns: ["{column}"]}}
embedding: {{provider: local}}
target: {{index: none}}
"""


def v10r(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "v10r", *args], env=env, capture_output=True,
                          text=True, check=False, timeout=120, cwd=str(ROOT))


def assert_printed_as_written(result: subprocess.CompletedProcess[str], *texts: str) -> str:
    output = result.stdout + result.stderr
    assert "Traceback" not in output and "MarkupError" not in output, output
    for char in CONTROL:
        assert char not in output, repr(output)
    for text in texts:
        assert text in output, output
    return output


async def test_markup_and_escapes_in_names_print_as_written(pg_dsn: str, tmp_path: Path) -> None:
    db = await asyncpg.connect(pg_dsn)
    try:
        await db.execute('CREATE TABLE "x[/]y" (id int PRIMARY KEY, "b\x1b[31m[bold]ody" text)')
        await db.execute("""INSERT INTO "x[/]y" VALUES (1, 'text')""")
    finally:
        await db.close()
    spec = tmp_path / "odd.yaml"
    spec.write_text(SPEC.format(table="x[/]y", column="b\\e[31m[bold]ody"))
    env = {**os.environ, "DATABASE_URL": pg_dsn, "COLUMNS": "250"}

    before = v10r("status", str(spec), env=env)
    assert before.returncode == 3
    assert_printed_as_written(before, "public.x[/]y", "b\\x1b[31m[bold]ody")

    plan = v10r("plan", str(spec), "--sql", env=env)
    assert_printed_as_written(plan, "x[/]y", "b\\x1b[31m[bold]ody_embedding")

    applied = v10r("apply", str(spec), env=env)
    assert applied.returncode == 0, applied.stderr
    assert_printed_as_written(applied, "x[/]y")

    after = v10r("status", str(spec), env=env)
    assert after.returncode == 3  # applied, rows still to embed
    assert_printed_as_written(after, "public.x[/]y.b\\x1b[31m[bold]ody_embedding")


async def test_a_hostile_provider_error_prints_as_written_in_dlq_list(
        setup: Setup) -> None:  # noqa: F811 - the fixture
    await seed(setup, 1)
    setup.server.always = Reply.error(400, HOSTILE)  # the input is refused: a dead letter
    worker = await start_cli(setup, "worker", str(setup.spec))
    try:
        async def dead() -> bool:
            return len(await setup.queue.dead_letters(setup.name)) == 1
        await eventually(dead)
    finally:
        code, err = await stop_cli(worker)
    for char in CONTROL:
        assert char not in err, repr(err)
    code, out, err = await run_cli(setup, "dlq", "list", str(setup.spec))
    assert code == 0, err
    result = subprocess.CompletedProcess([], code, out, err)
    assert_printed_as_written(result, "[bold]x[/]", "\\x1b[2J", "\\x9bZ")
