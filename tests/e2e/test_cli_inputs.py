"""Hostile or broken input to the real CLI: a located error and exit 1, quickly — never a
traceback, a hang, a leaked secret or a connection to a server nobody named."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.e2e]

ROOT = Path(__file__).resolve().parents[2]
MINIMAL = "name: docs\nsource: {table: docs, columns: [body]}\n"


def v10r(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    return subprocess.run([sys.executable, "-m", "v10r", *args], capture_output=True, text=True,
                          check=False, timeout=120, cwd=str(ROOT), env={**environ, **(env or {})})


def spec(tmp_path: Path, text: str, name: str = "pipeline.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def assert_clean_failure(result: subprocess.CompletedProcess[str], *secrets: str) -> str:
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "Traceback" not in output and "RecursionError" not in output, output
    for secret in secrets:
        assert secret not in output, output
    return output


BOMBS = {
    "alias-bomb": MINIMAL + 'l0: &a0 ["x","x","x","x","x","x","x","x","x"]\n' + "".join(
        f"l{i}: &a{i} [{','.join([f'*a{i - 1}'] * 9)}]\n" for i in range(1, 10)),
    "merge-key-bomb": "m0: &m0 {k: v}\n" + "".join(
        f"m{i}: &m{i} {{<<: [{','.join([f'*m{i - 1}'] * 9)}]}}\n" for i in range(1, 12)),
    "nested-lists": "name: " + "[" * 1000 + "]" * 1000 + "\n",
    "nested-mappings": "name: " + "{a: " * 1000 + "1" + "}" * 1000 + "\n",
}


@pytest.mark.parametrize("fmt", ["text", "json", "github"])
@pytest.mark.parametrize("bomb", BOMBS.values(), ids=BOMBS.keys())
def test_yaml_bombs_are_located_errors(bomb: str, fmt: str, tmp_path: Path) -> None:
    path = spec(tmp_path, bomb)
    output = assert_clean_failure(v10r("validate", "--format", fmt, str(path)))
    if fmt == "json":
        [diagnostic] = json.loads(output)["diagnostics"]
        assert diagnostic["rule"] == "yaml-limit" and diagnostic["line"] >= 1
    elif fmt == "github":
        assert output.startswith(f"::error file={path},line=") and "yaml-limit" in output
    else:
        assert f"{path}:" in output and ": error: YAML beyond limits: " in output


def test_plan_refuses_a_bomb_before_connecting(tmp_path: Path) -> None:
    result = v10r("plan", str(spec(tmp_path, BOMBS["alias-bomb"])),
                  env={"DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none"})
    assert "yaml-limit" in assert_clean_failure(result)


@pytest.mark.parametrize("value", [".nan", ".inf", "-.inf", "[1, .nan]", "9223372036854775808"])
def test_filter_values_that_cannot_be_sql_fail_validate_and_plan(value: str,
                                                                 tmp_path: Path) -> None:
    path = spec(tmp_path, MINIMAL.replace(
        "columns: [body]}", f"columns: [body], filter: [{{column: score, op: '>', value: {value}}}]}}"
        if not value.startswith("[") else
        f"columns: [body], filter: [{{column: score, op: in, value: {value}}}]}}"))
    output = assert_clean_failure(v10r("validate", str(path)))
    assert "source.filter[0].value" in output
    output = assert_clean_failure(v10r("plan", str(path),
                                       env={"DATABASE_URL": "postgresql://u@127.0.0.1:1/db"}))
    assert "source.filter[0].value" in output


LITERAL_SECRETS = {
    "dsn-without-scheme": ("database: {dsn: 'app:hunter2x@db/app'}\n", "hunter2x"),
    "dsn-beside-reference": ("database: {dsn: 'postgresql://u:hunter2x@${DB_HOST}/app'}\n",
                             "hunter2x"),
    "keyword-dsn": ("database: {dsn: 'host=db password=hunter2x'}\n", "hunter2x"),
    "api-key-with-reference": ("embedding: {provider: openai, api_key: '${P}sk-hunter2x'}\n",
                               "sk-hunter2x"),
    "header": ("embedding: {provider: openai, headers: {Authorization: 'Bearer hunter2x'}}\n",
               "hunter2x"),
    "redis-url": ("queue: {kind: redis, url: 'redis://:hunter2x@cache:6379/0'}\n", "hunter2x"),
    "amqp-url": ("queue: {kind: rabbitmq, url: 'amqp://u:hunter2x@mq/'}\n", "hunter2x"),
}


@pytest.mark.parametrize("fmt", ["text", "json", "github"])
@pytest.mark.parametrize(("extra", "secret"), LITERAL_SECRETS.values(), ids=LITERAL_SECRETS.keys())
def test_literal_secrets_are_refused_and_never_printed(extra: str, secret: str, fmt: str,
                                                       tmp_path: Path) -> None:
    path = spec(tmp_path, MINIMAL + extra)
    output = assert_clean_failure(v10r("validate", "--format", fmt, str(path)), secret)
    assert "secret-literal" in output
    assert_clean_failure(v10r("plan", str(path)), secret)


@pytest.mark.parametrize("dsn", ["user:hunter2x@127.0.0.1:1/db",
                                 "postgresql://u:hunter2x@127.0.0.1:notaport/db",
                                 "postgresql://u:hunter2x@127.0.0.1:1/db?sslmode=bogus"])
def test_a_bad_dsn_from_the_environment_is_masked(dsn: str, tmp_path: Path) -> None:
    path = spec(tmp_path, MINIMAL)
    output = assert_clean_failure(v10r("plan", str(path), env={"DATABASE_URL": dsn}), "hunter2x")
    assert "cannot connect to" in output and "****" in output


def test_an_empty_variable_is_unset_not_the_default_server(tmp_path: Path) -> None:
    path = spec(tmp_path, MINIMAL)
    for command in ("plan", "status"):
        output = assert_clean_failure(v10r(command, str(path), env={"DATABASE_URL": ""}))
        assert "DATABASE_URL is empty" in output and "database.dsn" in output
    blank_default = spec(tmp_path, MINIMAL + "database: {dsn: '${DATABASE_URL:-}'}\n", "b.yaml")
    output = assert_clean_failure(v10r("plan", str(blank_default)))
    assert "`database.dsn` is empty after expanding" in output
    explicit = spec(tmp_path, MINIMAL + "database: {dsn: '${DATABASE_URL}'}\n", "explicit.yaml")
    strict = v10r("validate", "--strict", str(explicit), env={"DATABASE_URL": " "})
    assert strict.returncode == 1 and "DATABASE_URL is not set or empty" in strict.stderr


DSN = "postgresql://u:hunter2x@127.0.0.1:1/db"


@pytest.mark.parametrize(("database", "dsn", "fragment"), [
    ("{sslmode: verify-full, sslrootcert: /nonexistent/ca.pem}", DSN,
     "'/nonexistent/ca.pem' set by `database.sslrootcert` does not exist"),
    ("{sslmode: verify-ca, sslrootcert: /}", DSN,
     "'/' set by `database.sslrootcert` is a directory"),
    ("{sslmode: verify-ca, sslrootcert: /etc/hostname}", DSN,
     "'/etc/hostname' set by `database.sslrootcert` holds no usable CA certificate"),
    ("{}", DSN + "?sslmode=require&sslcert=/no/client.pem",
     "'/no/client.pem' set by `sslcert` in the database DSN does not exist"),
    ("{}", DSN + "?sslmode=verify-full&sslrootcert=/no/ca.pem",
     "'/no/ca.pem' set by `sslrootcert` in the database DSN does not exist"),
    ("{}", DSN + "?sslkey=/no/key.pem", "'/no/key.pem' set by `sslkey` in the database DSN"),
])
def test_a_bad_tls_file_names_the_file_and_setting(database: str, dsn: str, fragment: str,
                                                   tmp_path: Path) -> None:
    path = spec(tmp_path, MINIMAL + f"database: {database}\n")
    output = assert_clean_failure(v10r("plan", str(path), env={"DATABASE_URL": dsn}), "hunter2x")
    assert fragment in output


def test_github_format_escapes_properties_and_data(tmp_path: Path) -> None:
    path = spec(tmp_path, MINIMAL.replace("name: docs", "name: 'bad,name:100%'"),
                name="odd,name:50%.yaml")
    result = v10r("validate", "--format", "github", str(path))
    assert result.returncode == 1
    [line] = result.stdout.splitlines()
    escaped = str(path).replace("%", "%25").replace(":", "%3A").replace(",", "%2C")
    assert line.startswith(f"::error file={escaped},line=1,col=7,title=v10r invalid-value::")
    message = line.split("::", 2)[2]
    assert "100%25" in message and "%0A" not in message and "\r" not in line


def test_github_format_escapes_newlines_in_messages(tmp_path: Path) -> None:
    path = spec(tmp_path, MINIMAL + "description: ok\nsource2: 1\n")
    path.write_text(MINIMAL + "bogus key: 1\n")
    result = v10r("validate", "--format", "github", str(path))
    assert result.returncode == 1 and all(ln.startswith("::") for ln in result.stdout.splitlines())


@pytest.mark.parametrize("fmt", ["text", "json", "github"])
def test_strict_reports_warnings_as_errors_in_every_format(fmt: str, tmp_path: Path) -> None:
    path = spec(tmp_path, MINIMAL + "database: {dsn: '${NO_SUCH_VARIABLE_X}'}\n")
    lenient = v10r("validate", "--format", fmt, str(path))
    assert lenient.returncode == 0
    strict = v10r("validate", "--strict", "--format", fmt, str(path))
    output = strict.stdout + strict.stderr
    assert strict.returncode == 1 and "NO_SUCH_VARIABLE_X" in output
    assert ": warning:" not in output and "::warning" not in output
    assert '"level": "warning"' not in output
    if fmt == "github":
        assert strict.stdout.startswith("::error ")
    elif fmt == "json":
        report = json.loads(strict.stdout)
        assert (report["valid"], report["errors"], report["warnings"]) == (False, 1, 0)
    else:
        assert ": error: environment variable NO_SUCH_VARIABLE_X" in output
        assert "0 valid pipeline(s), 1 error(s), 0 warning(s)" in output


def test_text_format_shows_control_characters_escaped(tmp_path: Path) -> None:
    path = spec(tmp_path, MINIMAL, name="evil\x1b[2Jname.yaml")
    path.write_text("name: [\n")
    result = v10r("validate", str(tmp_path))
    assert result.returncode == 1 and "\x1b" not in result.stderr
    assert "evil\\x1b[2Jname.yaml:" in result.stderr


async def test_pipelines_that_would_corrupt_each_other_are_not_applied(pg_dsn: str) -> None:
    import asyncpg

    db = await asyncpg.connect(pg_dsn)
    try:
        await db.execute("CREATE TABLE docs (id int PRIMARY KEY, body text, title text)")
        conflicts = str(ROOT / "tests" / "specs" / "conflicts")
        for command in (("plan",), ("apply", "--yes")):
            output = assert_clean_failure(v10r(*command, conflicts, env={"DATABASE_URL": pg_dsn}))
            assert "both write column `shared_vec_hash`" in output
        columns = await db.fetch("SELECT column_name FROM information_schema.columns "
                                 "WHERE table_name = 'docs'")
        assert sorted(r["column_name"] for r in columns) == ["body", "id", "title"]
        assert not await db.fetchval("SELECT to_regnamespace('v10r') IS NOT NULL")
    finally:
        await db.close()


@pytest.mark.parametrize("command", ["validate", "plan", "status", "worker", "dlq list"])
def test_a_missing_path_with_escape_sequences_is_shown_escaped(command: str,
                                                              tmp_path: Path) -> None:
    result = v10r(*command.split(), str(tmp_path / "no\x1b[2Jpe\x9b.yaml"))
    output = result.stdout + result.stderr
    assert result.returncode in (1, 2) and "Traceback" not in output
    assert "\x1b" not in output and "\x9b" not in output and "no\\x1b[2Jpe\\x9b" in output


HEADERS = {
    "name-with-space": ("'X Team': a", "embedding.headers", "not an HTTP header name"),
    "empty-name": ("'': a", "embedding.headers", "not an HTTP header name"),
    "value-with-line-break": ("X-Team: \"a\\r\\nX-Injected: 1\"", "embedding.headers.X-Team",
                              "not a valid HTTP header value"),
    "value-with-nul": ("X-Team: \"a\\0b\"", "embedding.headers.X-Team",
                       "not a valid HTTP header value"),
}


@pytest.mark.parametrize(("header", "where", "message"), HEADERS.values(), ids=HEADERS.keys())
def test_a_header_that_cannot_be_sent_is_a_located_error(header: str, where: str, message: str,
                                                         tmp_path: Path) -> None:
    path = spec(tmp_path, MINIMAL + "embedding:\n  provider: openai\n  headers:\n"
                f"    {header}\n")
    output = assert_clean_failure(v10r("validate", "--format", "json", str(path)))
    [diagnostic] = [d for d in json.loads(output)["diagnostics"] if d["level"] == "error"]
    assert diagnostic["path"] == where and message in diagnostic["message"]
    assert diagnostic["line"] == 6
