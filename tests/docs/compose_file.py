"""Reading compose/docker-compose.yml the way the tests need it: services, commands and
the `${VAR}` references that must be documented."""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_DIR = ROOT / "compose"
COMPOSE_FILE = COMPOSE_DIR / "docker-compose.yml"
ENV_EXAMPLE = COMPOSE_DIR / ".env.example"
PROFILES = ("redis", "rabbitmq", "kafka")

# `${VAR}`, `${VAR:-default}`, `${VAR:?message}`; `$${VAR}` is the container's own.
_REFERENCE = re.compile(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)")


@dataclass(frozen=True)
class Service:
    name: str
    command: list[str]
    profiles: list[str]
    spec: dict

    @property
    def runs_v10r(self) -> bool:
        return bool(self.command) and self.command[0] in ("v10r", "faust")

    @property
    def spec_dir(self) -> Path:
        """The host directory mounted at /pipelines."""
        for volume in self.spec.get("volumes", []):
            host, _, rest = volume.replace("${V10R_QUEUE:-redis}", "redis").partition(":")
            if rest.startswith("/pipelines"):
                return COMPOSE_DIR / host
        raise AssertionError(f"service {self.name} mounts no /pipelines")


def services() -> list[Service]:
    data = yaml.safe_load(COMPOSE_FILE.read_text())  # resolves the `<<: *anchor` merges
    return [Service(name, list(spec.get("command") or []), list(spec.get("profiles") or []),
                    spec) for name, spec in data["services"].items()]


def variables() -> set[str]:
    return set(_REFERENCE.findall(COMPOSE_FILE.read_text()))


def compose_command() -> list[str] | None:
    """`docker compose` (v2 plugin) when present, else the standalone `docker-compose`."""
    if shutil.which("docker"):
        probe = subprocess.run(["docker", "compose", "version"], capture_output=True,
                               check=False, timeout=30)
        if probe.returncode == 0:
            return ["docker", "compose"]
    standalone = shutil.which("docker-compose")
    return [standalone] if standalone else None
