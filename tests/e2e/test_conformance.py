"""The MCP conformance suite (0.2.0-alpha) and the Inspector CLI, real Node clients
against real servers on loopback.

* Every server scenario of the suite that applies to this server runs against a
  dev-mode instance, once per protocol era it belongs to: the handshake era
  (2025-06-18, 2025-11-25: initialize, Mcp-Session-Id) and the stateless era
  (2026-07-28: per-request ``_meta``, ``server/discover``). The suite sends no
  credentials, hence dev mode.
* The authorization-server scenarios run against a production-mode instance whose
  Google is the fake: the OAuth proxy is the authorization server they test.
* ``SERVER_SCENARIOS`` and ``EXCLUDED`` together name every server scenario the
  installed suite lists; a release that adds one fails
  ``test_every_scenario_of_the_suite_is_run_or_excluded_with_a_reason`` until it
  is placed in one or the other.

The tools come from scripts/install-mcp-tools (CI runs it); see tests/support/mcp_tools.py.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Final

import anyio
import httpx2
import pytest

from image_server.app import build_app
from image_server.auth import GoogleEndpoints
from image_server.settings import load_settings
from tests.e2e.oauth_client import discover, follow_browser, register_client
from tests.fakes.fake_google import FakeGoogle
from tests.support.live_server import free_port, live_server
from tests.support.mcp_tools import (
    INSPECTOR,
    PROCESS_TIMEOUT_S,
    SCENARIO_TIMEOUT_MS,
    LiveSuite,
    SuiteRun,
    baseline_file,
    listed_scenarios,
    node_tool,
    require_tools,
    run_suite,
)

pytestmark = pytest.mark.slow

FIRST_HANDSHAKE: Final = "2025-06-18"
HANDSHAKE: Final = "2025-11-25"
STATELESS: Final = "2026-07-28"

#: Each scenario that applies to this server, and the spec versions (eras) it runs at.
SERVER_SCENARIOS: Final[dict[str, tuple[str, ...]]] = {
    "server-initialize": (FIRST_HANDSHAKE, HANDSHAKE),
    "server-session-lifecycle": (FIRST_HANDSHAKE, HANDSHAKE),
    "logging-set-level": (HANDSHAKE,),
    "ping": (HANDSHAKE,),
    "tools-list": (FIRST_HANDSHAKE, HANDSHAKE, STATELESS),
    "server-sse-multiple-streams": (HANDSHAKE, STATELESS),
    "prompts-list": (HANDSHAKE, STATELESS),
    "resources-list": (HANDSHAKE, STATELESS),
    "dns-rebinding-protection": (HANDSHAKE, STATELESS),
    "server-stateless": (STATELESS,),
    "sep-2164-resource-not-found": (STATELESS,),
    "caching": (STATELESS,),
    "http-header-validation": (STATELESS,),
    "http-custom-header-server-validation": (STATELESS,),
}

#: Single checks of a scenario that runs, excused because they cannot be tested here.
#: Each must still fail: if one starts passing, the suite (and so the test) fails on
#: the stale excuse, and it must be taken out of this table.
EXCUSED_CHECKS: Final[dict[str, dict[str, str]]] = {
    "server-stateless": {
        "sep-2575-server-rejects-undeclared-capability": (
            "calls the reference server's diagnostic tool test_missing_capability (a tool "
            "that needs the client's sampling capability); no tool here needs a client "
            "capability, and the unknown tool is answered as a tool error"
        ),
        "sep-2575-missing-capability-http-400": (
            "the same diagnostic tool; the suite itself reports it not testable"
        ),
    },
    "http-custom-header-server-validation": dict.fromkeys(
        (
            "sep-2243-server-no-xmcp-tool",
            "sep-2243-server-decode-base64",
            "sep-2243-server-validate-param-match",
            "sep-2243-server-reject-invalid-param-chars",
            "sep-2243-server-reject-param-mismatch",
        ),
        "the scenario needs a tool whose parameters are mirrored into Mcp-Param headers "
        "(x-mcp-header in the input schema); no tool here declares one, and the suite "
        "reports every check not testable. Kept running so a tool that gains such a "
        "parameter turns these into real checks.",
    ),
}

_REFERENCE_TOOL = (
    "calls the reference server's diagnostic tool {}; this server has only its own "
    "tools, and the unknown tool is answered as a tool error, so the scenario fails "
    "(or passes only by accident)"
)
_REFERENCE_PROMPT = "gets the reference server's prompt {}; this server offers no prompts"
_REFERENCE_RESOURCE = "reads the reference server's resource {}; this server has none such"
_TASKS = (
    "the tasks extension (io.modelcontextprotocol/tasks) with the reference server's "
    "task tools; this server does not offer the extension"
)
_INPUT_REQUIRED = (
    "input-required results (SEP-2322) from the reference server's diagnostic tools "
    "({}); no tool here asks the client for input mid-call"
)
_SKILLS = "the skills extension (SEP-2640); this server does not offer it"

#: Server scenarios of the suite that do not run here, and exactly why.
EXCLUDED: Final[dict[str, str]] = {
    "completion-complete": (
        "completion/complete for the reference server's prompt and template arguments; "
        "this server offers no completions (Method not found)"
    ),
    "tools-call-simple-text": _REFERENCE_TOOL.format("test_simple_text"),
    "tools-call-image": _REFERENCE_TOOL.format("test_image_content")
    + "; image content is tested on generate_image in tests/e2e/test_protocol_eras.py",
    "tools-call-audio": _REFERENCE_TOOL.format("test_audio_content"),
    "tools-call-embedded-resource": _REFERENCE_TOOL.format("test_embedded_resource"),
    "tools-call-mixed-content": _REFERENCE_TOOL.format("test_multiple_content_types"),
    "tools-call-with-logging": _REFERENCE_TOOL.format("test_tool_with_logging"),
    "tools-call-error": _REFERENCE_TOOL.format("test_error_handling"),
    "tools-call-with-progress": _REFERENCE_TOOL.format("test_tool_with_progress"),
    "tools-call-sampling": _REFERENCE_TOOL.format("test_sampling"),
    "tools-call-elicitation": _REFERENCE_TOOL.format("test_elicitation"),
    "json-schema-2020-12": _REFERENCE_TOOL.format("json_schema_2020_12_tool"),
    "elicitation-sep1034-defaults": _REFERENCE_TOOL.format("test_elicitation_sep1034_defaults"),
    "elicitation-sep1330-enums": _REFERENCE_TOOL.format("test_elicitation_sep1330_enums"),
    "server-sse-polling": _REFERENCE_TOOL.format("test_reconnection")
    + " (SSE stream closed mid-call and resumed by polling)",
    "resources-read-text": _REFERENCE_RESOURCE.format("test://static-text"),
    "resources-read-binary": _REFERENCE_RESOURCE.format("test://static-binary"),
    "resources-templates-read": _REFERENCE_RESOURCE.format("test://template/{id}/data"),
    "resources-subscribe": (
        "resources/subscribe on the reference server's resource; this server does not "
        "offer subscriptions (capability subscribe: false, Method not found)"
    ),
    "resources-unsubscribe": "as resources-subscribe",
    "prompts-get-simple": _REFERENCE_PROMPT.format("test_simple_prompt"),
    "prompts-get-with-args": _REFERENCE_PROMPT.format("test_prompt_with_arguments"),
    "prompts-get-embedded-resource": _REFERENCE_PROMPT.format("test_prompt_with_embedded_resource"),
    "prompts-get-with-image": _REFERENCE_PROMPT.format("test_prompt_with_image"),
    "sep-2640-skills-directory": _SKILLS,
    "sep-2640-skills-enumeration": _SKILLS,
    "sep-2640-skills-manifest": _SKILLS,
    **dict.fromkeys(
        (
            "tasks-lifecycle",
            "tasks-capability-negotiation",
            "tasks-wire-fields",
            "tasks-request-state-removal",
            "tasks-mrtr-input",
            "tasks-request-headers",
            "tasks-dispatch-and-envelope",
            "tasks-status-notifications",
            "tasks-required-task-error",
            "tasks-mrtr-composition",
        ),
        _TASKS,
    ),
    **{
        f"input-required-result-{name}": _INPUT_REQUIRED.format(tools)
        for name, tools in (
            ("basic-elicitation", "test_input_required_result_elicitation"),
            ("basic-sampling", "test_input_required_result_sampling"),
            ("basic-list-roots", "test_input_required_result_list_roots"),
            ("request-state", "test_input_required_result_request_state"),
            ("multiple-input-requests", "test_input_required_result_multiple_inputs"),
            ("multi-round", "test_input_required_result_multi_round"),
            ("missing-input-response", "test_input_required_result_elicitation"),
            ("non-tool-request", "the prompt test_input_required_result_prompt"),
            ("result-type", "test_input_required_result_elicitation"),
            ("unsupported-methods", "test_input_required_result_capabilities"),
            ("tampered-state", "test_input_required_result_tampered_state"),
            ("capability-check", "test_input_required_result_capabilities"),
            ("ignore-extra-params", "test_input_required_result_elicitation"),
            ("validate-input", "test_input_required_result_elicitation"),
        )
    },
}

AUTHORIZATION_SCENARIOS: Final = (
    "authorization-server-metadata-endpoint",
    "authorization-code-grant",
)

CASES: Final = [
    pytest.param(scenario, version, id=f"{scenario}@{version}")
    for scenario, versions in SERVER_SCENARIOS.items()
    for version in versions
]
#: Scenario processes at once: Node start-up is most of a run, and the machine is small.
PARALLEL_RUNS: Final = 3

GOOGLE_CLIENT_ID: Final = "77-conformance.apps.googleusercontent.com"
GOOGLE_CLIENT_SECRET: Final = "GOCSPX-conformance-secret-0123456789"


@pytest.fixture(scope="module")
def mcp_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A dev-mode server (auth off, placeholder images) that knows its own port."""
    require_tools()
    root = tmp_path_factory.mktemp("conformance")
    port = free_port()
    settings = load_settings({"IMG_ROOT": str(root), "IMG_PORT": str(port)}, dev=True)
    with live_server(build_app(settings), port=port) as url:
        yield f"{url}/mcp"


@pytest.fixture(scope="module")
def scenario_runs(
    request: pytest.FixtureRequest, mcp_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[tuple[str, str], Future[SuiteRun]]]:
    """Start the selected scenario runs a few at a time; each test waits for its own."""
    selected: list[tuple[str, str]] = []
    for item in request.session.items:
        callspec = getattr(item, "callspec", None)
        if getattr(item, "module", None) is request.module and callspec is not None:
            params = callspec.params
            if "scenario" in params and "version" in params:
                selected.append((str(params["scenario"]), str(params["version"])))
    base = tmp_path_factory.mktemp("scenario-results")
    with ThreadPoolExecutor(max_workers=PARALLEL_RUNS) as pool:
        runs = {
            case: pool.submit(_run_server_scenario, mcp_url, *case, base / "@".join(case))
            for case in dict.fromkeys(selected)
        }
        yield runs
        for future in runs.values():
            future.cancel()


def _run_server_scenario(url: str, scenario: str, version: str, out: Path) -> SuiteRun:
    out.mkdir(parents=True)
    args = ["--url", url, "--scenario", scenario, "--spec-version", version]
    args += ["--timeout", str(SCENARIO_TIMEOUT_MS)]
    excused = EXCUSED_CHECKS.get(scenario)
    if excused:
        args += ["--expected-failures", str(baseline_file(out / "baseline.yml", scenario, excused))]
    return run_suite("server", args, out / "results")


def test_every_scenario_of_the_suite_is_run_or_excluded_with_a_reason() -> None:
    """The installed release lists exactly the scenarios this file has decided on."""
    require_tools()
    listed = listed_scenarios()
    server = listed["Server"]
    assert len(server) > 40, listed
    assert sorted(set(SERVER_SCENARIOS) | set(EXCLUDED)) == sorted(server)
    assert set(SERVER_SCENARIOS).isdisjoint(EXCLUDED)
    assert all(reason.strip() for reason in EXCLUDED.values())
    assert listed["Authorization server"] == list(AUTHORIZATION_SCENARIOS)


@pytest.mark.parametrize(("scenario", "version"), CASES)
def test_dev_mode_passes_the_conformance_scenario(
    scenario_runs: dict[tuple[str, str], Future[SuiteRun]], scenario: str, version: str
) -> None:
    """Every check passes (no failure, no warning) at that era's wire, bar the excused."""
    run = scenario_runs[(scenario, version)].result()
    excused = EXCUSED_CHECKS.get(scenario, {})
    assert run.returncode == 0, run.output
    assert "is not applicable at spec version" not in run.output, run.output
    assert run.problems(excused) == [], run.output
    assert any(c.status == "SUCCESS" and c.id not in excused for c in run.checks), run.output
    for check in excused:
        assert run.status_of(check) == {"FAILURE"}, f"{check} no longer fails: drop its excuse"


def test_the_inspector_lists_the_tools_in_strict_mode(mcp_url: str) -> None:
    """The schemas the Inspector validates strictly are the ones Claude sees."""
    result = node_tool(INSPECTOR, "--cli", mcp_url, "--method", "tools/list", "--strict")
    assert result.returncode == 0, result.stdout + result.stderr
    tools = json.loads(result.stdout)["tools"]
    names = [t["name"] for t in tools]
    assert names == ["generate_image", "get_image", "list_images"], names
    for tool in tools:
        assert tool["description"].strip(), tool["name"]
        assert tool["inputSchema"]["type"] == "object", tool["name"]
    by_name = {t["name"]: t for t in tools}
    assert by_name["get_image"]["annotations"]["readOnlyHint"] is True
    for name in ("get_image", "list_images"):
        assert by_name[name]["annotations"]["readOnlyHint"] is True
        assert by_name[name]["outputSchema"]["type"] == "object"


def test_the_inspector_can_generate_an_image(mcp_url: str) -> None:
    """A call through the Inspector returns a preview and a URL."""
    result = node_tool(
        INSPECTOR,
        "--cli",
        mcp_url,
        "--method",
        "tools/call",
        "--tool-name",
        "generate_image",
        "--tool-arg",
        "prompt=a lighthouse",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    reply = json.loads(result.stdout)
    assert reply["isError"] is False
    assert [c["type"] for c in reply["content"]] == ["image", "text", "text"]
    assert reply["structuredContent"]["url"].endswith(".png")
    shown = node_tool(
        INSPECTOR,
        "--cli",
        mcp_url,
        "--method",
        "tools/call",
        "--tool-name",
        "get_image",
        "--tool-arg",
        f"name={reply['structuredContent']['file_name']}",
    )
    assert shown.returncode == 0, shown.stdout + shown.stderr
    again = json.loads(shown.stdout)
    assert again["isError"] is False
    assert [c["type"] for c in again["content"]] == ["image", "text", "text"]
    listed = node_tool(
        INSPECTOR,
        "--cli",
        mcp_url,
        "--method",
        "tools/call",
        "--tool-name",
        "list_images",
        "--tool-arg",
        "containing=lighthouse",
    )
    assert listed.returncode == 0, listed.stdout + listed.stderr
    page = json.loads(listed.stdout)
    assert page["isError"] is False
    names = [i["file_name"] for i in page["structuredContent"]["images"]]
    assert reply["structuredContent"]["file_name"] in names


# --- the authorization server: the OAuth proxy in a production-mode instance ---------


@pytest.fixture(scope="module")
def production_issuer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The whole production app (OAuth proxy in front of the fake Google) on loopback;
    yields the issuer its authorization-server metadata names."""
    require_tools()
    root = tmp_path_factory.mktemp("conformance-production")
    port = free_port()
    with FakeGoogle(client_id=GOOGLE_CLIENT_ID, client_secret=GOOGLE_CLIENT_SECRET) as google:
        google.next_email = "ada@example.com"
        settings = load_settings(
            {
                "IMG_ROOT": str(root / "data"),
                "IMG_PUBLIC_URL": f"http://127.0.0.1:{port}",
                "GOOGLE_OAUTH_CLIENT_ID": GOOGLE_CLIENT_ID,
                "GOOGLE_OAUTH_CLIENT_SECRET": GOOGLE_CLIENT_SECRET,
                "IMG_JWT_SIGNING_KEY": "conformance-signing-key-0123456789abcdefghij",
                "IMG_ALLOWED_EMAILS": "ada@example.com",
                "GEMINI_API_KEY": "not-used-by-these-scenarios",
            }
        )
        app = build_app(settings, google=GoogleEndpoints.at(google.base_url))
        with live_server(app, port=port) as base_url:
            yield f"{base_url}/"


@pytest.mark.anyio
async def test_the_oauth_proxy_passes_the_authorization_server_scenarios(
    production_issuer: str, tmp_path: Path
) -> None:
    """Metadata (RFC 8414) and the authorization code grant with PKCE, end to end.

    The suite prints the authorization URL and waits for a browser to bring the code
    to its callback on loopback; this test is that browser: it walks the consent page
    and the fake Google, then delivers the redirect exactly as the server wrote it.
    """
    callback_port = free_port()
    redirect_uri = f"http://127.0.0.1:{callback_port}/callback"
    async with httpx2.AsyncClient(timeout=30) as http:
        found = await discover(f"{production_issuer}mcp", http=http)
        client_id = await register_client(found, redirect_uri, http=http)
    assert found.issuer == production_issuer
    args = ["--url", production_issuer, "--client-id", client_id]
    args += ["--port", str(callback_port), "--resource", found.resource]
    suite = LiveSuite("authorization", args, tmp_path / "results")
    try:
        with anyio.fail_after(PROCESS_TIMEOUT_S):
            url = await _printed_authorization_url(suite, found.authorization_endpoint)
            await _play_the_browser(url, redirect_uri)
    except BaseException:
        suite.process.kill()  # it would wait minutes for a callback that will not come
        raise
    run = await anyio.to_thread.run_sync(suite.finish)
    assert run.returncode == 0, run.output
    assert run.problems() == [], run.output
    assert sorted(c.id for c in run.checks) == [
        "authorization-code-grant",
        "authorization-server-metadata",
        "authorization-server-metadata-cimd",
    ], run.output
    assert {c.status for c in run.checks} == {"SUCCESS"}, run.output


async def _printed_authorization_url(suite: LiveSuite, authorization_endpoint: str) -> str:
    """The authorization request the suite asks a person to open in a browser."""
    while line := await anyio.to_thread.run_sync(suite.readline, abandon_on_cancel=True):
        if line.startswith(f"{authorization_endpoint}?"):
            return line.strip()
    pytest.fail("the suite exited without asking for a login:\n" + "".join(suite.lines))


async def _play_the_browser(url: str, redirect_uri: str) -> None:
    """Log in as the person would, then deliver the raw redirect to the suite."""
    redirects: list[str] = []

    async def note_redirect(response: httpx2.Response) -> None:
        if "location" in response.headers:
            redirects.append(response.headers["location"])

    hooks = {"response": [note_redirect]}
    async with httpx2.AsyncClient(follow_redirects=False, event_hooks=hooks) as browser:
        answer = await follow_browser(url, redirect_uri=redirect_uri, browser=browser)
    assert "code" in answer, answer
    back = redirects[-1]
    assert back.startswith(f"{redirect_uri}?"), back
    async with httpx2.AsyncClient(timeout=10) as http:
        for _ in range(50):  # its callback listener may still be starting
            try:
                delivered = await http.get(back)
                break
            except httpx2.ConnectError:
                await anyio.sleep(0.1)
        else:
            pytest.fail("the suite's callback listener never came up")
    assert delivered.status_code == 200, delivered.text
