"""Start-up configuration: safe production defaults, one clear line per problem."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from image_core.domain import ImageSize
from image_server.settings import DEFAULT_REDIRECT_URIS, SettingsError, load_settings

KEY = "k" * 64
PROD = {
    "GEMINI_API_KEY": "gem-secret-123456",
    "GOOGLE_OAUTH_CLIENT_ID": "client.apps.example",
    "GOOGLE_OAUTH_CLIENT_SECRET": "oauth-secret-123456",
    "IMG_PUBLIC_URL": "https://images.example.com",
    "IMG_JWT_SIGNING_KEY": KEY,
    "IMG_ALLOWED_EMAILS": "Me@Example.com, friend@example.com",
}


def problems(env: dict[str, str], *, dev: bool = False) -> list[str]:
    with pytest.raises(SettingsError) as caught:
        load_settings(env, dev=dev)
    return caught.value.problems


def test_a_complete_production_environment_loads_with_safe_defaults() -> None:
    """Every required value present: defaults for port, root and redirect allow-list."""
    s = load_settings(PROD)
    assert s.port == 8766
    assert s.host == "0.0.0.0"
    assert s.root == Path("/srv/images")
    assert s.allowed_emails == {"me@example.com", "friend@example.com"}
    assert s.allowed_redirect_uris == DEFAULT_REDIRECT_URIS
    assert s.backend == "gemini"
    assert s.public_host == "images.example.com"
    assert s.secure_cookies
    assert not s.auth_disabled
    assert not s.signing_key_is_ephemeral
    assert s.warnings == ()


def test_an_empty_environment_lists_every_missing_production_setting() -> None:
    """OAuth client, allow-list, public URL and Gemini key are each reported."""
    found = "\n".join(problems({}))
    for name in (
        "GOOGLE_OAUTH_CLIENT_ID",
        "IMG_ALLOWED_EMAILS",
        "IMG_PUBLIC_URL",
        "GEMINI_API_KEY",
    ):
        assert name in found


@pytest.mark.parametrize(
    "url", ["http://images.example.com", "ftp://x.example", "images.example.com"]
)
def test_a_public_url_without_https_is_refused_in_production(url: str) -> None:
    """Tokens and cookies must not travel in clear text."""
    found = problems({**PROD, "IMG_PUBLIC_URL": url})
    assert any("IMG_PUBLIC_URL" in p for p in found)


def test_a_public_url_with_a_path_is_refused() -> None:
    """The MCP resource and callbacks are built from the bare origin."""
    assert any(
        "without a path" in p for p in problems({**PROD, "IMG_PUBLIC_URL": "https://x.example/app"})
    )


def test_a_loopback_http_url_is_accepted_for_local_production_checks() -> None:
    """Plain http on loopback never leaves the machine; cookies then drop Secure."""
    s = load_settings({**PROD, "IMG_PUBLIC_URL": "http://127.0.0.1:8766"})
    assert not s.secure_cookies


def test_a_short_signing_key_is_refused() -> None:
    """A guessable key would let anyone mint tokens."""
    assert any(
        "IMG_JWT_SIGNING_KEY" in p for p in problems({**PROD, "IMG_JWT_SIGNING_KEY": "short"})
    )


def test_a_missing_signing_key_is_a_warning_and_a_random_key_is_used() -> None:
    """Recommended, not required: without it logins do not survive restarts."""
    env = {k: v for k, v in PROD.items() if k != "IMG_JWT_SIGNING_KEY"}
    first, second = load_settings(env), load_settings(env)
    assert first.signing_key_is_ephemeral
    assert first.jwt_signing_key != second.jwt_signing_key
    assert any("IMG_JWT_SIGNING_KEY" in w for w in first.warnings)


def test_auth_disabled_needs_no_secrets_and_warns_loudly() -> None:
    """Dev mode runs open with the placeholder backend and says so."""
    s = load_settings({"IMG_AUTH_DISABLED": "1"})
    assert s.auth_disabled
    assert s.backend == "placeholder"
    assert s.public_url == "http://127.0.0.1:8766"
    assert any("AUTHENTICATION IS DISABLED" in w for w in s.warnings)


def test_serve_with_login_off_listens_on_loopback_only(tmp_path: Path) -> None:
    """``serve`` with IMG_AUTH_DISABLED=1 and no IMG_HOST binds 127.0.0.1, not every interface."""
    s = load_settings({"IMG_AUTH_DISABLED": "1", "IMG_ROOT": str(tmp_path)})
    assert s.host == "127.0.0.1"
    assert not s.open_without_login
    assert not any("IMG_HOST" in w for w in s.warnings)


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.20"])
def test_login_off_on_a_chosen_network_address_warns_loudly(tmp_path: Path, host: str) -> None:
    """An explicit non-loopback IMG_HOST is obeyed, with a warning naming the danger."""
    s = load_settings({"IMG_AUTH_DISABLED": "1", "IMG_ROOT": str(tmp_path), "IMG_HOST": host})
    assert s.host == host
    assert s.open_without_login
    warning = next(w for w in s.warnings if "IMG_HOST" in w)
    assert host in warning
    assert "anyone" in warning


def test_an_explicit_loopback_host_with_login_off_is_not_flagged(tmp_path: Path) -> None:
    s = load_settings({"IMG_AUTH_DISABLED": "1", "IMG_ROOT": str(tmp_path), "IMG_HOST": "::1"})
    assert s.host == "::1"
    assert not s.open_without_login


def test_production_keeps_listening_on_every_interface() -> None:
    """With login on the default stays 0.0.0.0 (the reverse proxy reaches it) and is quiet."""
    s = load_settings(PROD)
    assert s.host == "0.0.0.0"
    assert not s.open_without_login


@pytest.mark.parametrize(("raw", "closed"), [(None, False), ("1", True), ("no", False)])
def test_login_requires_access_is_off_unless_switched_on(raw: str | None, closed: bool) -> None:
    """``IMG_LOGIN_REQUIRES_ACCESS``: strangers may connect by default (the product's contract)."""
    env = dict(PROD) if raw is None else {**PROD, "IMG_LOGIN_REQUIRES_ACCESS": raw}
    assert load_settings(env).login_requires_access is closed


def test_dev_mode_listens_on_loopback_and_keeps_data_locally(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """`image-mcp dev` never binds a public interface and writes under ./.localdata."""
    monkeypatch.chdir(tmp_path)
    s = load_settings({}, dev=True)
    assert s.host == "127.0.0.1"
    assert s.root == tmp_path / ".localdata"
    assert s.auth_disabled


def test_dev_mode_uses_gemini_when_a_key_is_present() -> None:
    """The placeholder is only a fallback."""
    assert load_settings({"GEMINI_API_KEY": "abc123456"}, dev=True).backend == "gemini"


def test_the_placeholder_backend_can_be_chosen_explicitly_in_production() -> None:
    """An offline demo deployment needs no Gemini key, with a warning."""
    env = {k: v for k, v in PROD.items() if k != "GEMINI_API_KEY"}
    s = load_settings({**env, "IMG_BACKEND": "placeholder"})
    assert s.backend == "placeholder"
    assert any("placeholder" in w for w in s.warnings)


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("IMG_PORT", "http"),
        ("IMG_PORT", "70000"),
        ("IMG_BACKEND", "dalle"),
        ("IMG_GEMINI_TIMEOUT", "-3"),
        ("IMG_LOG_LEVEL", "LOUD"),
        ("IMG_COST_PRO_4K", "cheap"),
    ],
)
def test_malformed_values_are_reported_by_name(key: str, value: str) -> None:
    """Each bad value produces a problem line naming its variable."""
    assert any(key in p for p in problems({**PROD, key: value}))


@pytest.mark.parametrize("value", ["1e100", "1000000.01", "nan", "-1", "Infinity", "1e999999"])
def test_a_price_outside_the_records_bound_is_refused_naming_the_variable(value: str) -> None:
    """What ``check`` passes, ``serve`` can run: the bound is the one records obey."""
    (problem,) = problems({**PROD, "IMG_COST_FLASH_1K": value})
    assert "IMG_COST_FLASH_1K" in problem
    assert "from 0 to 1000000" in problem


def test_a_price_at_the_bound_is_accepted() -> None:
    """One million dollars is the largest price a model may have."""
    s = load_settings({**PROD, "IMG_COST_FLASH_1K": "$1000000"})
    assert s.catalog.resolve("flash").price(ImageSize.S1K).usd == Decimal(1_000_000)


def test_model_and_price_overrides_reach_the_catalog() -> None:
    """A rename or price change needs configuration only."""
    s = load_settings({**PROD, "IMG_MODEL_PRO": "gemini-4-pro-image", "IMG_COST_PRO_4K": "0.30"})
    pro = s.catalog.resolve("pro")
    assert pro.model_id == "gemini-4-pro-image"
    assert pro.price(ImageSize.S4K).usd == Decimal("0.30")


def test_redirect_uri_allow_list_is_configurable() -> None:
    """Deployers can add another MCP client's callback."""
    s = load_settings(
        {**PROD, "IMG_ALLOWED_REDIRECT_URIS": "https://a.example/cb, http://localhost:*"}
    )
    assert s.allowed_redirect_uris == ("https://a.example/cb", "http://localhost:*")


def test_a_misspelt_variable_is_pointed_out() -> None:
    """IMG_ALOWED_EMAILS would otherwise be silently ignored."""
    s = load_settings({**PROD, "IMG_ALOWED_EMAILS": "x@example.com"})
    assert any("IMG_ALOWED_EMAILS" in w for w in s.warnings)


def test_secrets_never_appear_in_the_settings_repr_or_problems() -> None:
    """Logs of the settings object or its errors carry no secret."""
    s = load_settings(PROD)
    text = repr(s)
    for secret in (PROD["GEMINI_API_KEY"], PROD["GOOGLE_OAUTH_CLIENT_SECRET"], KEY):
        assert secret not in text
    found = "\n".join(problems({**PROD, "IMG_PUBLIC_URL": "http://x.example"}))
    assert PROD["GOOGLE_OAUTH_CLIENT_SECRET"] not in found


@pytest.mark.parametrize("uri", ["http://evil.example/cb", "https://*/cb", "ftp://x/cb"])
def test_an_unsafe_redirect_uri_pattern_is_refused_at_start(uri: str) -> None:
    """Codes must only travel to https hosts or loopback clients."""
    assert any(
        "IMG_ALLOWED_REDIRECT_URIS" in p
        for p in problems({**PROD, "IMG_ALLOWED_REDIRECT_URIS": uri})
    )


def test_a_data_folder_that_cannot_be_created_is_reported(tmp_path: Path) -> None:
    """A file in the way of IMG_ROOT is a start-up problem, not a traceback."""
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert any("IMG_ROOT" in p for p in problems({**PROD, "IMG_ROOT": str(blocker / "data")}))


def test_command_line_overrides_win_over_the_environment(tmp_path: Path) -> None:
    """``--port``/``--host``/``--root`` arrive as overrides; the variables they replace lose."""
    env = {"IMG_PORT": "1000", "IMG_HOST": "0.0.0.0", "IMG_ROOT": str(tmp_path / "env")}
    overrides = {"IMG_PORT": "2000", "IMG_HOST": "127.0.0.1", "IMG_ROOT": str(tmp_path / "flag")}
    settings = load_settings(env, dev=True, overrides=overrides)
    assert (settings.port, settings.host, settings.root) == (2000, "127.0.0.1", tmp_path / "flag")
    assert settings.public_url == "http://127.0.0.1:2000"


def test_the_call_deadline_and_preview_limits_have_field_ready_defaults() -> None:
    """200 s per tool call (under a 4-minute client), a 768 px and 150 KB preview."""
    settings = load_settings(PROD)
    assert settings.tool_deadline_seconds == 200
    assert (settings.preview_max_side, settings.preview_max_bytes) == (768, 150_000)
    custom = load_settings(
        {**PROD, "IMG_TOOL_DEADLINE": "90", "IMG_PREVIEW_MAX_SIDE": "512",
         "IMG_PREVIEW_MAX_BYTES": "80000"}
    )  # fmt: skip
    assert custom.tool_deadline_seconds == 90
    assert (custom.preview_max_side, custom.preview_max_bytes) == (512, 80_000)


@pytest.mark.parametrize(
    ("variable", "raw"),
    [
        ("IMG_TOOL_DEADLINE", "0"),
        ("IMG_TOOL_DEADLINE", "soon"),
        ("IMG_PREVIEW_MAX_SIDE", "32"),
        ("IMG_PREVIEW_MAX_SIDE", "1.5"),
        ("IMG_PREVIEW_MAX_BYTES", "5000000"),
    ],
)
def test_a_bad_deadline_or_preview_limit_is_refused_by_name(variable: str, raw: str) -> None:
    found = problems({**PROD, variable: raw})
    assert len(found) == 1
    assert variable in found[0]


def test_dynamic_registration_is_on_by_default_and_can_be_turned_off() -> None:
    """IMG_DYNAMIC_REGISTRATION=0 is for servers whose clients all use CIMD."""
    assert load_settings(PROD).dynamic_registration
    assert not load_settings({**PROD, "IMG_DYNAMIC_REGISTRATION": "0"}).dynamic_registration
    assert not load_settings({**PROD, "IMG_DYNAMIC_REGISTRATION": "off"}).dynamic_registration
    assert load_settings({**PROD, "IMG_DYNAMIC_REGISTRATION": "1"}).dynamic_registration


def test_an_unclear_dynamic_registration_value_is_refused_by_name() -> None:
    """A typo must not silently leave registration open (or shut)."""
    found = problems({**PROD, "IMG_DYNAMIC_REGISTRATION": "nope"})
    assert found == ["IMG_DYNAMIC_REGISTRATION='nope' must be 1 (on) or 0 (off)."]


@pytest.mark.parametrize("uri", ["https://*.com/*", "*.github.io", "https://*.ngrok-free.app"])
def test_a_wildcard_redirect_pattern_is_refused_naming_the_variable_and_pattern(uri: str) -> None:
    found = problems({**PROD, "IMG_ALLOWED_REDIRECT_URIS": f"http://127.0.0.1:*,{uri}"})
    assert any("IMG_ALLOWED_REDIRECT_URIS" in p and repr(uri) in p for p in found), found


def test_the_oauth_state_limits_have_defaults_and_can_be_set() -> None:
    default = load_settings(PROD)
    tuned = load_settings(
        {**PROD, "IMG_OAUTH_MAX_CLIENTS": "40", "IMG_OAUTH_CLIENT_IDLE_DAYS": "90"}
    )
    assert (default.oauth_max_clients, default.oauth_client_idle_days) == (500, 30)
    assert (tuned.oauth_max_clients, tuned.oauth_client_idle_days) == (40, 90)


@pytest.mark.parametrize(
    ("variable", "raw"),
    [
        ("IMG_OAUTH_MAX_CLIENTS", "0"),
        ("IMG_OAUTH_MAX_CLIENTS", "lots"),
        ("IMG_OAUTH_CLIENT_IDLE_DAYS", "1"),
        ("IMG_OAUTH_CLIENT_IDLE_DAYS", "-5"),
    ],
)
def test_a_bad_oauth_state_limit_is_refused_by_name(variable: str, raw: str) -> None:
    assert any(variable in p for p in problems({**PROD, variable: raw}))


# -- budgets, rate and concurrency ---------------------------------------------------------


def test_spending_limits_default_to_none_and_call_limits_to_ten_two_and_eight() -> None:
    s = load_settings(PROD)
    assert not s.budgets.any
    assert s.budgets.admins_exempt is False
    limits = s.call_limits
    assert (limits.rate_per_minute, limits.max_concurrent, limits.max_concurrent_total) == (
        10,
        2,
        8,
    )


def test_every_budget_and_limit_is_read() -> None:
    s = load_settings(
        {
            **PROD,
            "IMG_BUDGET_USER_DAILY": "2",
            "IMG_BUDGET_USER_MONTHLY": "$10.50",
            "IMG_BUDGET_TOTAL_MONTHLY": "50",
            "IMG_BUDGETS": " Alice@Example.com=20 , bob@example.com=0,",
            "IMG_BUDGET_ADMINS_EXEMPT": "yes",
            "IMG_RATE_PER_MINUTE": "30",
            "IMG_MAX_CONCURRENT": "4",
            "IMG_MAX_CONCURRENT_TOTAL": "16",
        }
    )
    b = s.budgets
    assert b.user_daily is not None
    assert b.user_daily.usd == Decimal(2)
    assert b.user_monthly is not None
    assert b.user_monthly.usd == Decimal("10.50")
    assert b.total_monthly is not None
    assert b.total_monthly.usd == Decimal(50)
    assert {k: v.usd for k, v in b.per_person_monthly.items()} == {
        "alice@example.com": Decimal(20),
        "bob@example.com": Decimal(0),
    }
    assert b.admins_exempt is True
    assert (
        s.call_limits.rate_per_minute,
        s.call_limits.max_concurrent,
        s.call_limits.max_concurrent_total,
    ) == (30, 4, 16)


@pytest.mark.parametrize(
    "variable", ["IMG_BUDGET_USER_DAILY", "IMG_BUDGET_USER_MONTHLY", "IMG_BUDGET_TOTAL_MONTHLY"]
)
@pytest.mark.parametrize("raw", ["-1", "ten", "NaN", "Infinity", "1000001", "1e9"])
def test_a_budget_that_is_not_an_amount_of_dollars_is_refused_by_name(
    variable: str, raw: str
) -> None:
    found = problems({**PROD, variable: raw})
    assert found == [
        f"{variable}={raw!r} must be an amount of US dollars from 0 to 1000000, such as 10 "
        "or 2.50 (0 lets nothing be spent)."
    ]


@pytest.mark.parametrize(
    "entry", ["alice@example.com", "alice=5", "alice@example.com=lots", "=5", "bob@example.com=-2"]
)
def test_a_bad_per_person_budget_is_refused_naming_the_entry(entry: str) -> None:
    found = problems({**PROD, "IMG_BUDGETS": f"carol@example.com=3,{entry}"})
    assert len(found) == 1
    assert found[0].startswith(f"IMG_BUDGETS entry {entry!r} is not email=dollars")


def test_a_person_named_twice_in_the_budgets_is_refused() -> None:
    found = problems({**PROD, "IMG_BUDGETS": "alice@example.com=3,ALICE@example.com=4"})
    assert found == ["IMG_BUDGETS names alice@example.com twice; keep one entry."]


@pytest.mark.parametrize(
    ("variable", "raw", "bounds"),
    [
        ("IMG_RATE_PER_MINUTE", "0", "1 to 100000"),
        ("IMG_MAX_CONCURRENT", "-1", "1 to 1000"),
        ("IMG_MAX_CONCURRENT_TOTAL", "many", "1 to 10000"),
        ("IMG_MAX_CONCURRENT", "2.5", "1 to 1000"),
    ],
)
def test_a_bad_call_limit_is_refused_by_name(variable: str, raw: str, bounds: str) -> None:
    assert problems({**PROD, variable: raw}) == [
        f"{variable}={raw!r} must be a whole number from {bounds}."
    ]


def test_an_unclear_admins_exempt_value_is_refused_by_name() -> None:
    assert problems({**PROD, "IMG_BUDGET_ADMINS_EXEMPT": "maybe"}) == [
        "IMG_BUDGET_ADMINS_EXEMPT='maybe' must be 1 (on) or 0 (off)."
    ]


def test_uploads_default_to_20_mb_and_50_photos_a_person() -> None:
    """IMG_UPLOAD_MAX_MB and IMG_UPLOADS_PER_USER unset; the cap in bytes has one home."""
    settings = load_settings(PROD)
    assert (settings.upload_max_mb, settings.uploads_per_user) == (20, 50)
    assert settings.upload_max_bytes == 20 * 1024 * 1024
    chosen = load_settings({**PROD, "IMG_UPLOAD_MAX_MB": "8", "IMG_UPLOADS_PER_USER": "0"})
    assert (chosen.upload_max_bytes, chosen.uploads_per_user) == (8 * 1024 * 1024, 0)


@pytest.mark.parametrize(
    ("variable", "raw", "bounds"),
    [
        ("IMG_UPLOAD_MAX_MB", "0", "1 to 100"),
        ("IMG_UPLOAD_MAX_MB", "20MB", "1 to 100"),
        ("IMG_UPLOAD_MAX_MB", "500", "1 to 100"),
        ("IMG_UPLOADS_PER_USER", "-1", "0 to 10000"),
        ("IMG_UPLOADS_PER_USER", "lots", "0 to 10000"),
    ],
)
def test_a_bad_upload_setting_is_refused_by_name(variable: str, raw: str, bounds: str) -> None:
    assert problems({**PROD, variable: raw}) == [
        f"{variable}={raw!r} must be a whole number from {bounds}."
    ]
