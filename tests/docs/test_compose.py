"""The production compose setup stays true: it parses for every queue profile, every
v10r service runs a real v10r command line, and every variable it reads is documented."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import click
import pytest
import yaml

from tests.docs.compose_file import (
    COMPOSE_DIR,
    COMPOSE_FILE,
    ENV_EXAMPLE,
    PROFILES,
    ROOT,
    compose_command,
    services,
    variables,
)
from v10r.cli import cli

VENV_BIN = Path(sys.executable).parent
DEPLOYMENT_DOC = ROOT / "docs" / "deployment.md"


def _compose(*args: str, env_file: Path | None = ENV_EXAMPLE) -> subprocess.CompletedProcess:
    if shutil.which("docker") is None:
        pytest.skip("the docker client is not installed, so compose files cannot be checked")
    command = compose_command()
    assert command, ("docker is installed but neither `docker compose` nor `docker-compose` "
                     "is: install one (e.g. `apt-get install docker-compose`)")
    env_args = ["--env-file", str(env_file)] if env_file else []
    env = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/tmp")}
    return subprocess.run([*command, "-f", str(COMPOSE_FILE), *env_args, *args],
                          capture_output=True, text=True, check=False, timeout=120, env=env, cwd=ROOT)


@pytest.mark.parametrize("profile", PROFILES)
def test_compose_config_parses_with_each_queue_profile(profile: str) -> None:
    result = _compose("--profile", profile, "config")
    assert result.returncode == 0, result.stderr
    resolved = yaml.safe_load(result.stdout)["services"]
    worker, listener = resolved[f"v10r-worker-{profile}"], resolved[f"v10r-listener-{profile}"]
    assert worker["deploy"]["replicas"] == 3
    for service in (worker, listener):
        assert service["depends_on"]["v10r-apply"]["condition"] == \
            "service_completed_successfully"
        assert service["depends_on"][profile]["condition"] == "service_healthy"
        assert service["environment"]["DATABASE_URL"].startswith("postgresql://v10r_writer:")
        assert service["environment"]["DATABASE_READ_URL"].startswith(
            "postgresql://v10r_reader:")
    assert resolved["v10r-apply"]["environment"]["DATABASE_URL"].startswith(
        "postgresql://v10r_owner:")


def test_compose_refuses_to_start_without_secrets() -> None:
    result = _compose("config", env_file=None)
    assert result.returncode != 0
    assert "PASSWORD" in result.stderr


def test_each_queue_profile_brings_its_broker_listener_and_workers() -> None:
    by_name = {s.name: s for s in services()}
    for profile in PROFILES:
        assert by_name[profile].profiles == [profile]
        assert by_name[f"v10r-listener-{profile}"].profiles == [profile]
        assert by_name[f"v10r-worker-{profile}"].profiles == [profile]
    always = [s.name for s in services() if not s.profiles]
    assert sorted(always) == ["infinity", "postgres", "v10r-apply"]


def test_every_long_running_service_has_a_health_check() -> None:
    for service in services():
        check = service.spec.get("healthcheck", {})
        if service.name == "v10r-apply":  # one-shot: its exit code is its health
            assert service.spec["restart"] == "no"
            continue
        assert check.get("test") and not check.get("disable"), service.name


def _v10r_services() -> list:
    return [s for s in services() if s.runs_v10r]


@pytest.mark.parametrize("service", _v10r_services(), ids=lambda s: s.name)
def test_service_command_is_a_real_command_whose_help_works(service) -> None:
    env = {**os.environ, "V10R_PIPELINES": str(service.spec_dir),
           "DATABASE_URL": "postgresql://v10r_writer@127.0.0.1:1/app",
           "DATABASE_READ_URL": "postgresql://v10r_reader@127.0.0.1:1/app"}
    program, *args = service.command
    if program == "faust":
        help_args = [*args[:args.index("worker") + 1], "--help"]
    else:
        help_args = [args[0], "--help"]
    result = subprocess.run([str(VENV_BIN / program), *help_args], capture_output=True,
                            text=True, check=False, timeout=120, env=env, cwd=ROOT)
    assert result.returncode == 0, f"{service.command}: {result.stdout}{result.stderr}"
    assert "Usage:" in result.stdout


@pytest.mark.parametrize("service", [s for s in _v10r_services() if s.command[0] == "v10r"],
                         ids=lambda s: s.name)
def test_service_command_line_parses(service) -> None:
    """The exact arguments in the compose file are accepted by the command's options."""
    name, *args = service.command[1:]
    with click.Context(cli) as group_context:
        command = cli.get_command(group_context, name)
        assert command is not None, f"`v10r {name}` is not a v10r command"
        command.make_context(name, list(args), parent=group_context)


@pytest.mark.parametrize("profile", PROFILES)
def test_compose_pipelines_are_valid_and_use_their_profiles_queue(profile: str) -> None:
    spec_dir = COMPOSE_DIR / "pipelines" / profile
    env = {**os.environ, "DATABASE_URL": "postgresql://w@db/app",
           "DATABASE_READ_URL": "postgresql://r@db/app"}
    result = subprocess.run([str(VENV_BIN / "v10r"), "validate", "--strict", str(spec_dir)],
                            capture_output=True, text=True, check=False, timeout=60, env=env, cwd=ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    for spec_file in spec_dir.glob("*.yaml"):
        spec = yaml.safe_load(spec_file.read_text())
        assert spec["queue"]["kind"] == profile
        assert spec["embedding"]["provider"] == "infinity"


def test_every_variable_the_compose_file_reads_is_documented() -> None:
    example = ENV_EXAMPLE.read_text()
    documented = set(re.findall(r"^#?\s*([A-Z_][A-Z0-9_]*)=", example, re.MULTILINE))
    deployment = DEPLOYMENT_DOC.read_text()
    for name in sorted(variables()):
        assert name in documented, f"${{{name}}} is not in compose/.env.example"
        assert f"`{name}`" in deployment, f"${{{name}}} is not in docs/deployment.md"


def test_env_example_holds_no_real_secret() -> None:
    for line in ENV_EXAMPLE.read_text().splitlines():
        name, _, value = line.partition("=")
        if not line.startswith("#") and "PASSWORD" in name:
            assert value == "change-me", line


def test_image_runs_as_non_root_with_a_health_check_and_no_baked_secret() -> None:
    dockerfile = (COMPOSE_DIR / "Dockerfile").read_text()
    assert dockerfile.startswith("#") and "FROM python:3.11-slim" in dockerfile
    assert 'pip install ".[all]"' in dockerfile
    assert re.search(r"^USER v10r$", dockerfile, re.MULTILINE)
    assert re.search(r"^HEALTHCHECK ", dockerfile, re.MULTILINE)
    for line in dockerfile.splitlines():
        if line.startswith(("ENV", "ARG")):
            assert not re.search(r"PASSWORD|SECRET|API_KEY|TOKEN|postgresql://", line), line
