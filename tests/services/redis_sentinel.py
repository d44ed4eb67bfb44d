"""A real Redis Sentinel setup for tests: a primary, a replica and three sentinels, each a
`redis-server` process on a free port in a temporary directory, nothing persisted."""

from __future__ import annotations

import contextlib
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from v10r.embedded.process import free_port

SERVICE = "v10rprimary"
PASSWORD = "sentinel-test-pw"
WAIT_S = 30.0


def _wait_port(port: int, timeout: float = WAIT_S) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


@dataclass
class SentinelSetup:
    """The processes, their ports, and the URL v10r is given."""

    workdir: Path
    data_ports: list[int] = field(default_factory=list)  # [initial primary, replica]
    sentinel_ports: list[int] = field(default_factory=list)
    processes: dict[int, subprocess.Popen] = field(default_factory=dict)

    @property
    def url(self) -> str:
        hosts = ",".join(f"127.0.0.1:{p}" for p in self.sentinel_ports)
        return f"redis+sentinel://:{PASSWORD}@{hosts}/{SERVICE}/0"

    def start(self) -> SentinelSetup:
        primary, replica = free_port(), free_port()
        self.data_ports = [primary, replica]
        auth = ["--requirepass", PASSWORD, "--masterauth", PASSWORD]
        self._spawn(primary, auth)
        self._spawn(replica, [*auth, "--replicaof", "127.0.0.1", str(primary)])
        for _ in range(3):
            port = free_port()
            conf = self.workdir / f"sentinel-{port}.conf"
            conf.write_text(
                f"port {port}\nbind 127.0.0.1\ndir {self.workdir}\n"
                f"sentinel monitor {SERVICE} 127.0.0.1 {primary} 2\n"
                f"sentinel auth-pass {SERVICE} {PASSWORD}\n"
                f"sentinel down-after-milliseconds {SERVICE} 1000\n"
                f"sentinel failover-timeout {SERVICE} 5000\n")
            self.sentinel_ports.append(port)
            self._spawn(port, [], conf=conf)
        self._wait_replicated()
        return self

    def _spawn(self, port: int, args: list[str], conf: Path | None = None) -> None:
        command = ["redis-server", *([str(conf), "--sentinel"] if conf else []),
                   "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                   "--appendonly", "no", "--dir", str(self.workdir), *args]
        log = (self.workdir / f"redis-{port}.log").open("w")
        self.processes[port] = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        _wait_port(port)

    def _wait_replicated(self) -> None:
        """Until the replica is in sync and every sentinel knows both servers."""
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline:
            info = self.data_command(self.data_ports[1], "INFO", "replication")
            known = [self.sentinel_command(p, "SENTINEL", "replicas", SERVICE)
                     for p in self.sentinel_ports]
            if "master_link_status:up" in info and all(str(self.data_ports[1]) in k
                                                      for k in known):
                return
            time.sleep(0.1)
        raise TimeoutError(f"the Sentinel setup did not come up; logs in {self.workdir}")

    def data_command(self, port: int, *args: str) -> str:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall(f"AUTH {PASSWORD}\r\n{' '.join(args)}\r\n".encode())
            time.sleep(0.05)
            return sock.recv(65536).decode(errors="replace")

    def sentinel_command(self, port: int, *args: str) -> str:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall((" ".join(args) + "\r\n").encode())
            time.sleep(0.05)
            return sock.recv(65536).decode(errors="replace")

    def primary_port(self) -> int:
        """The port the sentinels name as primary now."""
        reply = self.sentinel_command(self.sentinel_ports[0], "SENTINEL",
                                      "get-master-addr-by-name", SERVICE)
        return int(reply.split()[-1])

    def kill(self, port: int) -> None:
        """SIGKILL one server: no goodbye to its clients, its replica or the sentinels."""
        process = self.processes.pop(port)
        process.send_signal(signal.SIGKILL)
        process.wait(10)

    def stop(self) -> None:
        for process in self.processes.values():
            process.kill()
        for process in self.processes.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(10)
        self.processes.clear()


@contextlib.contextmanager
def sentinel_setup() -> Iterator[SentinelSetup]:
    if shutil.which("redis-server") is None:
        raise RuntimeError("redis-server is not installed (apt install redis-server)")
    workdir = Path(tempfile.mkdtemp(prefix="v10r-sentinel-"))
    setup = SentinelSetup(workdir)
    try:
        yield setup.start()
    finally:
        setup.stop()
        shutil.rmtree(workdir, ignore_errors=True)
