"""Real roles over a real database, for tests of privileges and trust boundaries.

Fixtures (each over the fresh `pg_dsn` database of the test; roles are cluster-wide,
so their names carry a random suffix and are dropped with everything they own):

* `roles` → `Roles`, set up like docs/security.md says:
    - `owner`: owns `public.docs (id bigint PK, title varchar, body text)`, may create
      schema `v10r`; runs `v10r plan`/`apply`.
    - `writer`: listener and workers: SELECT and UPDATE on `public.docs`, and (default
      privileges of the owner) USAGE on schema `v10r` and SELECT on its tables.
    - `reader`: `status`, catch-up scans and row fetches: SELECT only.
    - `hostile`: CREATE on schema `public`, as every role had before PostgreSQL 15.
    - `admin`: the server's superuser (the DSN of `pg_dsn`).
  `roles.dsn("writer")` is a role's DSN, `await roles.connect("hostile")` an asyncpg
  connection (close it), `roles.name("owner")` the real role name.
* `cli` → `await cli("status", spec, role="reader", read_role=None)`: runs the real CLI
  (`sys.executable -m v10r …`) with `DATABASE_URL` and `DATABASE_READ_URL` (default:
  the same role) set to those roles' DSNs; returns a `CliResult` (code, out, err).
* helpers, not fixtures: `run_v10r(*args, env=…)` runs the CLI with extra environment;
  `write_spec(tmp_path, text)` writes a spec file.
"""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import pytest

ROLE_KINDS = ("owner", "writer", "reader", "hostile")
CLI_TIMEOUT_S = 120


@dataclass
class Roles:
    admin_dsn: str
    suffix: str = field(default_factory=lambda: uuid.uuid4().hex[:8])

    def name(self, kind: str) -> str:
        return f"v10r_{kind}_{self.suffix}"

    def dsn(self, kind: str) -> str:
        """A role's DSN on the test's database (the embedded server trusts local users)."""
        if kind == "admin":
            return self.admin_dsn
        rest = self.admin_dsn.split("://", 1)[1].split("@", 1)[1]
        return f"postgresql://{self.name(kind)}@{rest}"

    async def connect(self, kind: str) -> asyncpg.Connection:
        return await asyncpg.connect(self.dsn(kind))

    async def admin(self, sql: str) -> None:
        conn = await self.connect("admin")
        try:
            await conn.execute(sql)
        finally:
            await conn.close()


def _setup_sql(r: Roles) -> str:
    owner, writer, reader, hostile = (r.name(k) for k in ROLE_KINDS)
    return f"""
    CREATE ROLE {owner} LOGIN; CREATE ROLE {writer} LOGIN; CREATE ROLE {reader} LOGIN;
    CREATE ROLE {hostile} LOGIN;
    DO $$ BEGIN EXECUTE format('GRANT CREATE ON DATABASE %I TO {owner}',
                                current_database()); END $$;
    GRANT USAGE ON SCHEMA public TO {writer}, {reader};
    GRANT CREATE ON SCHEMA public TO {owner}, {hostile};
    ALTER DEFAULT PRIVILEGES FOR ROLE {owner} GRANT USAGE ON SCHEMAS TO {writer}, {reader};
    ALTER DEFAULT PRIVILEGES FOR ROLE {owner} GRANT SELECT ON TABLES TO {writer}, {reader};
    SET ROLE {owner};
    CREATE TABLE public.docs (id bigint PRIMARY KEY, title varchar(200),
                              body text NOT NULL DEFAULT '');
    GRANT UPDATE ON public.docs TO {writer};
    RESET ROLE;
    """


@pytest.fixture
async def roles(pg_dsn: str) -> AsyncIterator[Roles]:
    """Owner, writer, reader and hostile roles on the test's database (see module doc)."""
    r = Roles(pg_dsn)
    await r.admin(_setup_sql(r))
    try:
        yield r
    finally:
        names = ", ".join(r.name(k) for k in ROLE_KINDS)
        # One role at a time, owner first: its default ACLs name the others.
        drops = " ".join(f"DROP OWNED BY {r.name(k)} CASCADE;" for k in ROLE_KINDS)
        await r.admin(f"""
            SELECT pg_terminate_backend(pid) FROM pg_stat_activity
             WHERE usename IN ({', '.join(repr(r.name(k)) for k in ROLE_KINDS)})
               AND pid <> pg_backend_pid();
            {drops}
            DROP ROLE {names};""")


@dataclass(frozen=True)
class CliResult:
    code: int
    out: str
    err: str

    @property
    def output(self) -> str:
        return self.out + self.err


Cli = Callable[..., Awaitable[CliResult]]


async def run_v10r(*args: str | Path, env: dict[str, str]) -> CliResult:
    """`python -m v10r <args>` with `env` added to this process's environment."""
    environ = {**os.environ, "NO_COLOR": "1", "COLUMNS": "200", **env}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "v10r", *map(str, args), env=environ,
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE)
    try:
        out, err = await asyncio.wait_for(proc.communicate(), CLI_TIMEOUT_S)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    assert proc.returncode is not None
    return CliResult(proc.returncode, out.decode(), err.decode())


@pytest.fixture
def cli(roles: Roles) -> Cli:
    """Runs `python -m v10r <args>` as the given roles; see the module docstring."""
    async def run(*args: str | Path, role: str = "owner", read_role: str | None = None,
                  env: dict[str, str] | None = None) -> CliResult:
        return await run_v10r(*args, env={"DATABASE_URL": roles.dsn(role),
                                          "DATABASE_READ_URL": roles.dsn(read_role or role),
                                          **(env or {})})

    return run


def write_spec(directory: Path, text: str, name: str = "docs.yaml") -> Path:
    path = directory / name
    path.write_text(text)
    return path
