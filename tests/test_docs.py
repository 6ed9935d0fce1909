"""The docs tell the truth: variables exist, examples run, commands match CI, links resolve.

Conventions the checks rely on: ```python blocks in docs/library.md are complete
programs (fragments use ```py); a ```text block right after "It prints:" is the
expected output of the program before it; README's "Quick start" holds exactly two
one-line shell commands; .ci/run keeps its command in ``TEST_COMMAND='...'``;
docs/deploy.md's nginx section has two ```nginx blocks, stage 1 then stage 2, which
``nginx -t`` checks (nginx must be installed where ``CI`` is set).
"""

from __future__ import annotations

import datetime
import os
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat
from cryptography.x509.oid import NameOID
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


# -- the nginx recipe ---------------------------------------------------------------------------
# deploy.md's "### nginx" section holds exactly two ```nginx blocks: stage 1 (plain HTTP and
# the certbot webroot, valid before any certificate exists) and stage 2 (the TLS server,
# appended once certbot has run). The checks below read them from the page itself.

DEPLOY = DOCS / "deploy.md"
NGINX = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/usr/local/sbin")
ACME_WEBROOT = "/var/www/certbot"
PROXY_KINDS = ("proxy", "fastcgi", "uwsgi", "scgi")


def nginx_section() -> str:
    match = re.search(r"^### nginx\s*$(.*?)(?=^#{2,3} )", DEPLOY.read_text(), re.M | re.S)
    assert match, "docs/deploy.md has no '### nginx' section"
    return match.group(1)


def nginx_stages() -> tuple[str, str]:
    blocks = [body for lang, body in FENCE.findall(nginx_section()) if lang == "nginx"]
    assert len(blocks) == 2, "the nginx section needs exactly two nginx blocks (stage 1, 2)"
    return blocks[0], blocks[1]


def seconds(value: str) -> int:
    """An nginx time such as ``600s`` or ``10m`` in seconds."""
    match = re.fullmatch(r"(\d+)([smh]?)", value)
    assert match, f"not an nginx time in seconds, minutes or hours: {value}"
    return int(match.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600}[match.group(2)]


def test_nginx_stage_one_needs_no_certificate_and_serves_the_acme_webroot() -> None:
    """The first config works on an empty host; certbot writes where nginx serves."""
    stage_one, _ = nginx_stages()
    assert "ssl" not in stage_one
    assert re.search(r"location /\.well-known/acme-challenge/ \{\s*root " + ACME_WEBROOT, stage_one)
    shell = " ".join(body for lang, body in FENCE.findall(nginx_section()) if lang == "sh")
    assert f"mkdir -p {ACME_WEBROOT}" in shell
    assert f"certbot certonly --webroot -w {ACME_WEBROOT} -d DOMAIN" in shell
    # The TLS block comes after certbot, in the text as in the order of work.
    section = nginx_section()
    assert section.index("certbot certonly") < section.index(nginx_stages()[1])


def test_nginx_stage_two_streams_mcp_and_waits_for_long_generations() -> None:
    """No buffering on /mcp, 10 minutes of patience, the certificate certbot made."""
    _, stage_two = nginx_stages()
    assert "ssl_certificate     /etc/letsencrypt/live/DOMAIN/fullchain.pem;" in stage_two
    assert "ssl_certificate_key /etc/letsencrypt/live/DOMAIN/privkey.pem;" in stage_two
    mcp = re.search(r"location /mcp \{(.*?)\}", stage_two, re.S)
    assert mcp
    assert "proxy_buffering off;" in mcp.group(1)
    for directive in ("proxy_read_timeout", "proxy_send_timeout"):
        value = re.search(rf"^\s*{directive} (\w+);", stage_two, re.M)
        assert value, directive
        assert seconds(value.group(1)) >= 600, directive
    assert re.search(r"^\s*client_max_body_size \d+[km]?;", stage_two, re.M)
    assert "proxy_set_header Host $host;" in stage_two


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


def localised(conf: str, tmp: Path, ports: dict[str, int]) -> str:
    """A documented block with every host path in ``tmp`` and loopback ports of our own."""
    conf = conf.replace("/etc/letsencrypt/live/DOMAIN/", f"{tmp}/live/")
    conf = conf.replace(ACME_WEBROOT, f"{tmp}/webroot").replace("DOMAIN", "images.example.com")

    def listen(match: re.Match[str]) -> str:
        v6, port, rest = match.group(1) is not None, ports[match.group(2)], match.group(3)
        if v6:
            return f"listen [::1]:{port}{rest};" if ipv6_loopback() else ""
        return f"listen 127.0.0.1:{port}{rest};"

    return re.sub(r"listen (\[::\]:)?(\d+)([^;]*);", listen, conf)


def self_signed(directory: Path) -> None:
    """fullchain.pem and privkey.pem for images.example.com, valid for a day."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "images.example.com")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    directory.mkdir()
    (directory / "fullchain.pem").write_bytes(certificate.public_bytes(Encoding.PEM))
    (directory / "privkey.pem").write_bytes(
        key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    )


def nginx_test(tmp: Path, site: str) -> subprocess.CompletedProcess[str]:
    """``nginx -t`` on ``site`` inside a minimal main config; nothing outside ``tmp``."""
    (tmp / "image-mcp.conf").write_text(site)
    temp_paths = "\n".join(
        f"    {kind}_temp_path {tmp}/{kind};" for kind in ("client_body", *PROXY_KINDS)
    )
    (tmp / "nginx.conf").write_text(
        f"pid {tmp}/nginx.pid;\nerror_log {tmp}/error.log;\nevents {{}}\n"
        f"http {{\n    access_log {tmp}/access.log;\n{temp_paths}\n"
        f"    include {tmp}/image-mcp.conf;\n}}\n"
    )
    assert NGINX
    return subprocess.run(
        [NGINX, "-t", "-p", f"{tmp}/", "-e", f"{tmp}/error.log", "-c", f"{tmp}/nginx.conf"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def require_nginx() -> None:
    if NGINX:
        return
    if os.environ.get("CI"):
        pytest.fail("CI is set but nginx is missing: install Debian's nginx package.")
    pytest.skip("nginx is missing (apt-get install nginx); set CI=1 to make this fail.")


def test_nginx_accepts_stage_one_before_any_certificate_exists(tmp_path: Path) -> None:
    """The first-run order works: `nginx -t` passes with no certificate on disk."""
    require_nginx()
    stage_one, _ = nginx_stages()
    (tmp_path / "webroot").mkdir()
    ports = {"80": free_port(), "443": free_port()}
    result = nginx_test(tmp_path, localised(stage_one, tmp_path, ports))
    assert result.returncode == 0, result.stderr
    assert not (tmp_path / "live").exists()


def test_nginx_accepts_both_stages_once_the_certificate_exists(tmp_path: Path) -> None:
    """Stage 2 appended to stage 1, with a certificate where certbot puts it."""
    require_nginx()
    stage_one, stage_two = nginx_stages()
    (tmp_path / "webroot").mkdir()
    self_signed(tmp_path / "live")
    ports = {"80": free_port(), "443": free_port()}
    site = localised(stage_one + "\n" + stage_two, tmp_path, ports)
    result = nginx_test(tmp_path, site)
    assert result.returncode == 0, result.stderr
