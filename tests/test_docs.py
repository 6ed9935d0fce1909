"""The docs tell the truth: variables exist, examples run, commands match CI, links resolve.

Conventions the checks rely on: ```python blocks in docs/library.md are complete
programs (fragments use ```py); a ```text block right after "It prints:" is the
expected output of the program before it; README's "Quick start" holds exactly two
one-line shell commands; .ci/run keeps its command in ``TEST_COMMAND='...'``.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient

from image_server.auth import (
    DEFAULT_ALLOWED_REDIRECT_URIS,
    MIN_SIGNING_KEY_CHARS,
    GoogleEndpoints,
    build_mcp_auth,
)
from image_server.settings import KNOWN_VARIABLES, load_settings

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
README = ROOT / "README.md"
DOCS = ROOT / "docs"
CONFIGURATION = DOCS / "configuration.md"
LIBRARY = DOCS / "library.md"
CI_RUN = ROOT / ".ci" / "run"

VARIABLE = re.compile(r"\b(?:IMG|GOOGLE|GEMINI)_[A-Z0-9]+(?:_[A-Z0-9]+)*\b")
FENCE = re.compile(r"^```([\w-]*)\n(.*?)^```$", re.MULTILINE | re.DOTALL)
MARKDOWN_LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
HTML_LINK = re.compile(r"""\b(?:src|href)=["']([^"']+)["']""")


def markdown_files() -> list[Path]:
    """README.md and every page under docs/."""
    return [README, *sorted(DOCS.glob("*.md"))]


def without_code(text: str) -> str:
    """Markdown with fenced blocks removed (links inside code are examples, not links)."""
    return FENCE.sub("", text)


def section(text: str, title: str) -> str:
    """The body of the ``## title`` section, up to the next heading of level 1 or 2."""
    match = re.search(rf"^## {re.escape(title)}\s*$(.*?)(?=^#{{1,2}} |\Z)", text, re.M | re.S)
    assert match, f"no '## {title}' section"
    return match.group(1)


# -- configuration ----------------------------------------------------------------------


def test_every_known_variable_has_a_row_in_the_configuration_table() -> None:
    """Each variable the server reads is documented with its own table row."""
    text = CONFIGURATION.read_text()
    rows = set(re.findall(r"^\| `([A-Z0-9_]+)` \|", text, re.M))
    missing = sorted(set(KNOWN_VARIABLES) - rows)
    assert not missing, f"docs/configuration.md has no row for {missing}"


@pytest.mark.parametrize("page", markdown_files(), ids=lambda p: p.name)
def test_every_variable_a_page_names_is_one_the_server_reads(page: Path) -> None:
    """No doc sends a deployer after a variable that does not exist (or is misspelt)."""
    if not page.exists():
        pytest.fail(f"{page.relative_to(ROOT)} is missing")
    unknown = sorted(set(VARIABLE.findall(page.read_text())) - set(KNOWN_VARIABLES))
    assert not unknown, f"{page.relative_to(ROOT)} names unknown variables {unknown}"


# -- the library examples -----------------------------------------------------------------


def library_programs() -> list[tuple[str, str | None]]:
    """Each ```python block of docs/library.md with the output documented after it."""
    text = LIBRARY.read_text()
    programs: list[tuple[str, str | None]] = []
    for match in FENCE.finditer(text):
        if match.group(1) != "python":
            continue
        following = re.match(
            r"\s*It prints:\s*```text\n(.*?)^```$", text[match.end() :], re.M | re.S
        )
        programs.append((match.group(2), following.group(1) if following else None))
    return programs


def test_the_library_page_has_runnable_examples() -> None:
    """At least one complete program, with its output shown."""
    programs = library_programs()
    assert programs
    assert any(expected is not None for _, expected in programs)


@pytest.mark.parametrize("index", range(len(library_programs())))
def test_each_library_example_runs_and_prints_what_the_page_says(
    index: int, tmp_path: Path
) -> None:
    """Run as a reader would: a fresh interpreter, an empty folder, no server."""
    source, expected = library_programs()[index]
    script = tmp_path / "example.py"
    script.write_text(source)
    result = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    if expected is not None:
        assert result.stdout == expected


# -- README and CI ----------------------------------------------------------------------------


def quick_start_commands() -> list[str]:
    """The fenced commands of README's Quick start."""
    blocks = FENCE.findall(section(README.read_text(), "Quick start"))
    commands: list[str] = []
    for _, body in blocks:
        lines = [line for line in body.splitlines() if line.strip()]
        assert len(lines) == 1, f"a Quick start block must hold one command: {body!r}"
        commands.append(lines[0].strip())
    return commands


def ci_test_command() -> str:
    """The command .ci/run hands to bash."""
    match = re.search(r"^TEST_COMMAND='([^']+)'$", CI_RUN.read_text(), re.M)
    assert match, ".ci/run has no TEST_COMMAND='...' line"
    assert 'bash -c "$TEST_COMMAND"' in CI_RUN.read_text()
    return match.group(1)


def test_the_quick_start_has_exactly_two_commands_run_and_test() -> None:
    """A front door, not a manual: one command to run it, one to test it."""
    commands = quick_start_commands()
    assert len(commands) == 2
    run, test = commands
    assert "image-mcp" in run
    assert "pytest" in test


def test_the_readme_test_command_is_the_one_ci_runs() -> None:
    """What a newcomer types is what CI proves works."""
    assert quick_start_commands()[1] == ci_test_command()


def test_the_readme_run_command_names_a_real_cli_command() -> None:
    """``uv run image-mcp dev`` must exist: ask the installed CLI for its help."""
    run = quick_start_commands()[0]
    assert run.startswith("pip install uv && uv run ")
    program, *arguments = run.removeprefix("pip install uv && uv run ").split()
    result = subprocess.run(
        [str(BIN / program), *arguments, "--help"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_the_readme_links_every_page_in_docs() -> None:
    """No page is an orphan."""
    linked = {Path(target).name for target in MARKDOWN_LINK.findall(README.read_text())}
    pages = {page.name for page in DOCS.glob("*.md")}
    assert pages <= linked, f"README does not link {sorted(pages - linked)}"


# -- links ------------------------------------------------------------------------------------


def relative_links(page: Path) -> list[str]:
    """Targets of Markdown and HTML links outside code blocks, without anchors or absolutes."""
    text = without_code(page.read_text())
    targets = MARKDOWN_LINK.findall(text) + HTML_LINK.findall(text)
    local = []
    for target in targets:
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I) or target.startswith(("#", "//")):
            continue
        local.append(target.split("#", 1)[0])
    return local


@pytest.mark.parametrize("page", markdown_files(), ids=lambda p: p.name)
def test_every_relative_link_points_at_an_existing_file(page: Path) -> None:
    """Screenshots and sibling pages included."""
    broken = [t for t in relative_links(page) if not (page.parent / t).resolve().exists()]
    assert not broken, f"{page.relative_to(ROOT)} links to missing files: {broken}"


def test_the_readme_shows_the_dashboard() -> None:
    """The front page has a picture of the product."""
    links = relative_links(README)
    assert "docs/screenshots/overview.png" in links
    assert "docs/screenshots/gallery.png" in links


# -- the Claude connector ---------------------------------------------------------------------


def documented_default(variable: str) -> str:
    """The default cell of ``variable``'s row in docs/configuration.md, backticks removed."""
    text = CONFIGURATION.read_text()
    match = re.search(rf"^\| `{variable}` \| `([^`]*)` \|", text, re.M)
    assert match, f"docs/configuration.md has no backticked default for {variable}"
    return match.group(1)


def test_the_documented_redirect_uri_default_is_the_one_the_code_uses(tmp_path: Path) -> None:
    """Same entries, same order: the claude.com callback cannot drop out of the docs again."""
    documented = tuple(documented_default("IMG_ALLOWED_REDIRECT_URIS").split(","))
    assert documented == DEFAULT_ALLOWED_REDIRECT_URIS
    # ... and it is what the server runs with when the variable is unset.
    settings = load_settings({"IMG_ROOT": str(tmp_path)}, dev=True)
    assert settings.allowed_redirect_uris == documented


def test_the_connector_page_names_every_default_claude_callback() -> None:
    """The page that tells people what Claude needs lists each allowed Claude callback."""
    text = (DOCS / "claude-connector.md").read_text()
    claude = [uri for uri in DEFAULT_ALLOWED_REDIRECT_URIS if "claude" in uri]
    assert claude
    for uri in claude:
        assert f"`{uri}`" in text, uri


def test_the_server_advertises_what_the_connector_page_says_claude_needs(
    tmp_path: Path,
) -> None:
    """claude-connector.md: CIMD needs the flag and "none"; registration needs the endpoint."""
    proxy = build_mcp_auth(
        client_id="docs-test.apps.googleusercontent.com",
        client_secret="docs-test-secret",
        base_url="https://images.example.com",
        jwt_signing_key="k" * MIN_SIGNING_KEY_CHARS,
        storage_dir=tmp_path,
        allowed_client_redirect_uris=DEFAULT_ALLOWED_REDIRECT_URIS,
        endpoints=GoogleEndpoints.google(),
    )
    app = Starlette(routes=proxy.get_routes(mcp_path="/mcp"))
    with TestClient(app, base_url="https://images.example.com") as client:
        metadata = client.get("/.well-known/oauth-authorization-server").json()
    text = (DOCS / "claude-connector.md").read_text()
    assert metadata["client_id_metadata_document_supported"] is True
    assert '"client_id_metadata_document_supported": true' in text
    assert "none" in metadata["token_endpoint_auth_methods_supported"]
    assert metadata["registration_endpoint"] == "https://images.example.com/register"
    assert "POST /register" in text
