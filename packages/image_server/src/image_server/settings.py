"""Configuration from the environment, read once at start-up and validated as a whole.

Every problem is collected so a deployer sees all of them in one go, each naming the
variable and what to do. Secrets are kept out of ``repr`` and never echoed back.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

import attrs

from image_core.access import normalise_email, parse_email_list
from image_core.budgets import Budgets
from image_core.catalog import ModelCatalog
from image_core.domain import MAX_PRICE_USD, CostEstimate
from image_core.errors import InvalidConfiguration
from image_core.limits import (
    DEFAULT_MAX_CONCURRENT,
    DEFAULT_MAX_CONCURRENT_TOTAL,
    DEFAULT_RATE_PER_MINUTE,
    CallLimits,
)
from image_core.uploads import MIB
from image_server.edge import (
    DEFAULT_ALLOWED_REDIRECT_URIS,
    DEFAULT_MAX_OAUTH_CLIENTS,
    DEFAULT_OAUTH_CLIENT_IDLE_DAYS,
    LOOPBACK_HOSTS,
    MIN_SECRET_CHARS,
    check_redirect_patterns,
    is_loopback,
)
from image_server.model_settings import catalog_from_environment, model_variables
from image_server.models_file import VARIABLE as MODELS_FILE_VARIABLE
from image_server.models_file import load_models_file
from image_server.tool_names import ALL_TOOLS, TOOL_NAME

BackendChoice = Literal["auto", "gemini", "placeholder"]

DEFAULT_ROOT = Path("/srv/images")
DEV_ROOT = Path(".localdata")
DEFAULT_PORT = 8766
MIN_SIGNING_KEY_CHARS = MIN_SECRET_CHARS
DEFAULT_REDIRECT_URIS: tuple[str, ...] = tuple(DEFAULT_ALLOWED_REDIRECT_URIS)

#: Every variable this server reads, with a one-line meaning (docs are checked against it).
KNOWN_VARIABLES: Mapping[str, str] = {
    "GEMINI_API_KEY": "Gemini API key used for every generation",
    "GOOGLE_OAUTH_CLIENT_ID": "Google OAuth client id (MCP login and dashboard login)",
    "GOOGLE_OAUTH_CLIENT_SECRET": "Google OAuth client secret",
    "IMG_PUBLIC_URL": "public https base URL, e.g. https://images.example.com",
    "IMG_JWT_SIGNING_KEY": "stable random secret; signs tokens, cookies, encrypts OAuth state",
    "IMG_ALLOWED_EMAILS": "comma-separated emails that may generate",
    "IMG_ADMIN_EMAILS": "comma-separated emails that see every user in the dashboard",
    "IMG_MODEL_FLASH": "model id used for the flash alias",
    "IMG_MODEL_PRO": "model id used for the pro alias",
    "IMG_MODEL_LITE": "model id used for the lite alias",
    "IMG_MODELS_FILE": "TOML or JSON file that changes or adds models (checked at start-up)",
    "IMG_COST_FLASH_512": "estimated USD per flash image at 512",
    "IMG_COST_FLASH_1K": "estimated USD per flash image at 1K",
    "IMG_COST_FLASH_2K": "estimated USD per flash image at 2K",
    "IMG_COST_FLASH_4K": "estimated USD per flash image at 4K",
    "IMG_COST_PRO_1K": "estimated USD per pro image at 1K",
    "IMG_COST_PRO_2K": "estimated USD per pro image at 2K",
    "IMG_COST_PRO_4K": "estimated USD per pro image at 4K",
    "IMG_COST_LITE_1K": "estimated USD per lite image at 1K",
    "IMG_ROOT": "data folder for images, records and OAuth state",
    "IMG_AUTH_DISABLED": "1 to run without any login (local development only)",
    "IMG_GEMINI_BASE_URL": "alternative Gemini API base URL (gateway or test server)",
    "IMG_GEMINI_TIMEOUT": "seconds to wait for one Gemini answer",
    "IMG_TOOL_DEADLINE": "seconds one tool call may take in all (retries fit inside it)",
    "IMG_PREVIEW_MAX_SIDE": "long side in pixels of the inline preview (default 768)",
    "IMG_PREVIEW_MAX_BYTES": "largest inline preview in bytes (default 150000)",
    "IMG_BACKEND": "auto, gemini or placeholder",
    "IMG_ALLOWED_REDIRECT_URIS": "comma-separated exact MCP client redirect URIs",
    "IMG_DYNAMIC_REGISTRATION": "0 to refuse dynamic client registration (CIMD clients only)",
    "IMG_OAUTH_MAX_CLIENTS": "most MCP client registrations kept (default 500)",
    "IMG_OAUTH_CLIENT_IDLE_DAYS": "days a registration lasts after its last token (default 30)",
    "IMG_HOST": "address to listen on",
    "IMG_PORT": "port to listen on",
    "IMG_LOG_LEVEL": "DEBUG, INFO, WARNING or ERROR",
    "IMG_TOOLS": "comma-separated tools to offer (default all; generate_image is always on)",
    "IMG_LOGIN_REQUIRES_ACCESS": "1 to give connector tokens only to people who may generate",
    "IMG_BUDGET_USER_DAILY": "US dollars each person may spend per UTC day (default: no limit)",
    "IMG_BUDGET_USER_MONTHLY": "US dollars each person may spend per UTC month (default: none)",
    "IMG_BUDGET_TOTAL_MONTHLY": "US dollars everyone together may spend per UTC month",
    "IMG_BUDGETS": "per-person monthly budgets, e.g. alice@example.com=20,bob@example.com=5",
    "IMG_BUDGET_ADMINS_EXEMPT": "1 to hold admins to no budget (default 0: they are held)",
    "IMG_RATE_PER_MINUTE": "images one person may have sent to Gemini a minute (default 10)",
    "IMG_MAX_CONCURRENT": "images one person may have in the making at once (default 2)",
    "IMG_MAX_CONCURRENT_TOTAL": "images the whole server makes at once (default 8)",
    "IMG_UPLOAD_MAX_MB": "largest photo a person may upload, in MB (default 20)",
    "IMG_UPLOADS_PER_USER": "uploaded photos one person may keep (default 50; 0: no uploads)",
}


DEFAULT_TOOL_DEADLINE = 200.0
"""Seconds: under the strictest mainstream client's limit (about 4 minutes)."""
DEFAULT_PREVIEW_MAX_SIDE = 768
DEFAULT_PREVIEW_MAX_BYTES = 150_000
DEFAULT_UPLOAD_MAX_MB = 20
DEFAULT_UPLOADS_PER_USER = 50


class SettingsError(Exception):
    """Start-up refused: ``problems`` holds one actionable line per problem."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


@attrs.frozen
class Settings:
    """Everything the composition root needs; built by ``load_settings``."""

    root: Path
    public_url: str
    host: str = "0.0.0.0"  # noqa: S104 - a container listens on all interfaces
    port: int = DEFAULT_PORT
    auth_disabled: bool = False
    dev: bool = False
    gemini_api_key: str | None = attrs.field(default=None, repr=False)
    gemini_base_url: str | None = None
    gemini_timeout_seconds: float = 180.0
    tool_deadline_seconds: float = DEFAULT_TOOL_DEADLINE
    preview_max_side: int = DEFAULT_PREVIEW_MAX_SIDE
    preview_max_bytes: int = DEFAULT_PREVIEW_MAX_BYTES
    backend: Literal["gemini", "placeholder"] = "gemini"
    google_client_id: str | None = None
    google_client_secret: str | None = attrs.field(default=None, repr=False)
    jwt_signing_key: str = attrs.field(factory=lambda: secrets.token_hex(32), repr=False)
    signing_key_is_ephemeral: bool = False
    allowed_emails: frozenset[str] = frozenset()
    admin_emails: frozenset[str] = frozenset()
    allowed_redirect_uris: tuple[str, ...] = DEFAULT_REDIRECT_URIS
    dynamic_registration: bool = True
    oauth_max_clients: int = DEFAULT_MAX_OAUTH_CLIENTS
    oauth_client_idle_days: int = DEFAULT_OAUTH_CLIENT_IDLE_DAYS
    catalog: ModelCatalog = attrs.field(factory=ModelCatalog)
    log_level: str = "INFO"
    tools: tuple[str, ...] = ALL_TOOLS
    """The MCP tools offered (``IMG_TOOLS``), in listing order."""
    login_requires_access: bool = False
    budgets: Budgets = attrs.field(factory=Budgets)
    call_limits: CallLimits = attrs.field(factory=CallLimits)
    upload_max_mb: int = DEFAULT_UPLOAD_MAX_MB
    """The largest photo a person may upload (``IMG_UPLOAD_MAX_MB``), 1 MB = 1024 x 1024 bytes."""
    uploads_per_user: int = DEFAULT_UPLOADS_PER_USER
    """Uploaded photos one person may keep (``IMG_UPLOADS_PER_USER``); 0 switches uploads off."""
    warnings: tuple[str, ...] = ()

    @property
    def public_host(self) -> str:
        """Host name (and port if any) of the public URL, for Host-header checks."""
        return urlsplit(self.public_url).netloc

    @property
    def open_without_login(self) -> bool:
        """Login is off and the server listens beyond this machine (IMG_HOST chosen so)."""
        return self.auth_disabled and not is_loopback(self.host.strip("[]"))

    @property
    def upload_max_bytes(self) -> int:
        """``IMG_UPLOAD_MAX_MB`` in bytes: the one figure the upload and body caps come from."""
        return self.upload_max_mb * MIB

    @property
    def secure_cookies(self) -> bool:
        """Cookies get the Secure flag unless the public URL is plain http (local dev)."""
        return urlsplit(self.public_url).scheme == "https"


def _flag(raw: str | None) -> bool:
    return (raw or "").strip().lower() in {"1", "true", "yes", "on"}


def _clean(env: Mapping[str, str], key: str) -> str | None:
    value = env.get(key, "").strip()
    return value or None


def load_settings(
    env: Mapping[str, str], *, dev: bool = False, overrides: Mapping[str, str] | None = None
) -> Settings:
    """Validate ``env`` and build ``Settings``, or raise ``SettingsError`` listing every problem.

    ``dev`` is the ``image-mcp dev`` mode: auth off, loopback only, local data folder,
    placeholder images when no Gemini key is set. ``overrides`` are command-line flags
    by the variable they replace (``{"IMG_PORT": "9000"}``); a flag wins over the variable.
    """
    env = {**env, **(overrides or {})}
    problems: list[str] = []
    notes: list[str] = []
    auth_disabled = dev or _flag(env.get("IMG_AUTH_DISABLED"))

    port = _port(env.get("IMG_PORT"), problems)
    host = _host(env, auth_disabled, notes)
    root = Path(_clean(env, "IMG_ROOT") or (DEV_ROOT if dev else DEFAULT_ROOT)).absolute()
    _check_root(root, problems)
    public_url = _public_url(env, host, port, auth_disabled, problems)
    api_key = _clean(env, "GEMINI_API_KEY")
    backend = _backend(env.get("IMG_BACKEND"), api_key, auth_disabled, problems, notes)
    timeout = _positive_float(env, "IMG_GEMINI_TIMEOUT", 180.0, problems)
    deadline = _positive_float(env, "IMG_TOOL_DEADLINE", DEFAULT_TOOL_DEADLINE, problems)
    preview_side = _whole_number(
        env, "IMG_PREVIEW_MAX_SIDE", DEFAULT_PREVIEW_MAX_SIDE, (64, 4096), problems
    )
    preview_bytes = _whole_number(
        env, "IMG_PREVIEW_MAX_BYTES", DEFAULT_PREVIEW_MAX_BYTES, (10_000, 1_000_000), problems
    )
    login = _login(env, auth_disabled, problems, notes)
    signing_key = _signing_key(env, auth_disabled, problems, notes)
    redirect_uris = _redirect_uris(env, problems)
    dynamic_registration = _on_off(env, "IMG_DYNAMIC_REGISTRATION", True, problems)
    max_clients = _whole_number(
        env, "IMG_OAUTH_MAX_CLIENTS", DEFAULT_MAX_OAUTH_CLIENTS, (1, 100_000), problems
    )
    idle_days = _whole_number(
        env, "IMG_OAUTH_CLIENT_IDLE_DAYS", DEFAULT_OAUTH_CLIENT_IDLE_DAYS, (2, 3650), problems
    )
    catalog = _catalog(env, problems)
    log_level = _log_level(env, problems)
    tools = _tools(env, problems)
    budgets = _budgets(env, problems)
    call_limits = _call_limits(env, problems)
    upload_max_mb = _whole_number(
        env, "IMG_UPLOAD_MAX_MB", DEFAULT_UPLOAD_MAX_MB, (1, 100), problems
    )
    uploads_per_user = _whole_number(
        env, "IMG_UPLOADS_PER_USER", DEFAULT_UPLOADS_PER_USER, (0, 10_000), problems
    )
    notes.extend(_unknown_variables(env, model_variables(catalog)))
    if problems:
        raise SettingsError(problems)
    return Settings(
        root=root,
        public_url=public_url,
        host=host,
        port=port,
        auth_disabled=auth_disabled,
        dev=dev,
        gemini_api_key=api_key,
        gemini_base_url=_clean(env, "IMG_GEMINI_BASE_URL"),
        gemini_timeout_seconds=timeout,
        tool_deadline_seconds=deadline,
        preview_max_side=preview_side,
        preview_max_bytes=preview_bytes,
        backend=backend,
        google_client_id=login.client_id,
        google_client_secret=login.client_secret,
        jwt_signing_key=signing_key or secrets.token_hex(32),
        signing_key_is_ephemeral=signing_key is None,
        allowed_emails=login.allowed,
        admin_emails=login.admins,
        allowed_redirect_uris=redirect_uris,
        dynamic_registration=dynamic_registration,
        oauth_max_clients=max_clients,
        oauth_client_idle_days=idle_days,
        catalog=catalog,
        log_level=log_level,
        tools=tools,
        login_requires_access=_flag(env.get("IMG_LOGIN_REQUIRES_ACCESS")),
        budgets=budgets,
        call_limits=call_limits,
        upload_max_mb=upload_max_mb,
        uploads_per_user=uploads_per_user,
        warnings=tuple(notes),
    )


def _tools(env: Mapping[str, str], problems: list[str]) -> tuple[str, ...]:
    """``IMG_TOOLS``: which tools to offer; unset or ``all`` is every tool."""
    raw = _clean(env, "IMG_TOOLS")
    if raw is None or raw.lower() == "all":
        return ALL_TOOLS
    wanted = {name.strip().lower() for name in raw.split(",") if name.strip()}
    unknown = sorted(wanted - set(ALL_TOOLS))
    if unknown:
        problems.append(
            f"IMG_TOOLS names {', '.join(unknown)}, which this server does not have; "
            f"choose among {', '.join(ALL_TOOLS)} (or all)."
        )
        return ALL_TOOLS
    if TOOL_NAME not in wanted:
        problems.append(
            f"IMG_TOOLS must include {TOOL_NAME}: it is the tool this server exists for "
            f"(e.g. IMG_TOOLS={TOOL_NAME} for that tool alone)."
        )
        return ALL_TOOLS
    return tuple(name for name in ALL_TOOLS if name in wanted)


@attrs.frozen
class _Login:
    client_id: str | None
    client_secret: str | None = attrs.field(repr=False)
    allowed: frozenset[str]
    admins: frozenset[str]


def _login(
    env: Mapping[str, str], auth_disabled: bool, problems: list[str], notes: list[str]
) -> _Login:
    """The Google client and who may use the server; with auth on, both are required."""
    login = _Login(
        client_id=_clean(env, "GOOGLE_OAUTH_CLIENT_ID"),
        client_secret=_clean(env, "GOOGLE_OAUTH_CLIENT_SECRET"),
        allowed=parse_email_list(env.get("IMG_ALLOWED_EMAILS", "")),
        admins=parse_email_list(env.get("IMG_ADMIN_EMAILS", "")),
    )
    if auth_disabled:
        notes.append(
            "AUTHENTICATION IS DISABLED (IMG_AUTH_DISABLED=1 or dev mode): anyone who can "
            "reach this server can generate images and see every image. Never expose it."
        )
        return login
    if not login.client_id or not login.client_secret:
        problems.append(
            "GOOGLE_OAUTH_CLIENT_ID and GOOGLE_OAUTH_CLIENT_SECRET are required for Google "
            "login (see docs/google-setup.md), or set IMG_AUTH_DISABLED=1 for local use."
        )
    if not login.allowed and not login.admins:
        problems.append(
            "IMG_ALLOWED_EMAILS is empty: nobody could generate. Set it to a "
            "comma-separated list such as me@gmail.com,friend@gmail.com."
        )
    return login


def _signing_key(
    env: Mapping[str, str], auth_disabled: bool, problems: list[str], notes: list[str]
) -> str | None:
    """``IMG_JWT_SIGNING_KEY`` if long enough; ``None`` means a random one per start."""
    signing_key = _clean(env, "IMG_JWT_SIGNING_KEY")
    if signing_key is not None and len(signing_key) < MIN_SIGNING_KEY_CHARS:
        problems.append(
            f"IMG_JWT_SIGNING_KEY is shorter than {MIN_SIGNING_KEY_CHARS} characters; "
            "generate one with: openssl rand -hex 32"
        )
    elif signing_key is None and not auth_disabled:
        notes.append(
            "IMG_JWT_SIGNING_KEY is not set: a random key is used, so every restart signs "
            "everyone out and connectors must log in again. Set it (openssl rand -hex 32)."
        )
    return signing_key


def _redirect_uris(env: Mapping[str, str], problems: list[str]) -> tuple[str, ...]:
    """The MCP clients' redirect URI patterns, checked by the rule ``edge`` holds."""
    redirect_uris = tuple(
        u.strip() for u in env.get("IMG_ALLOWED_REDIRECT_URIS", "").split(",") if u.strip()
    )
    try:
        check_redirect_patterns(redirect_uris or DEFAULT_REDIRECT_URIS)
    except ValueError as exc:
        problems.append(f"IMG_ALLOWED_REDIRECT_URIS: {exc}.")
    return redirect_uris or DEFAULT_REDIRECT_URIS


def _on_off(env: Mapping[str, str], key: str, default: bool, problems: list[str]) -> bool:
    """A switch spelt 1/0, true/false, yes/no or on/off; anything else is refused."""
    raw = _clean(env, key)
    if raw is None:
        return default
    value = raw.lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off"}:
        return False
    problems.append(f"{key}={raw!r} must be 1 (on) or 0 (off).")
    return default


def _catalog(env: Mapping[str, str], problems: list[str]) -> ModelCatalog:
    """The shipped table, then ``IMG_MODELS_FILE``, then ``IMG_MODEL_*`` and ``IMG_COST_*``."""
    models_file = _clean(env, MODELS_FILE_VARIABLE)
    try:
        base = load_models_file(Path(models_file), ModelCatalog()) if models_file else None
        return catalog_from_environment(env, base)
    except InvalidConfiguration as exc:
        problems.append(exc.message)
        return ModelCatalog()


DOLLARS_RULE = (
    f"must be an amount of US dollars from 0 to {MAX_PRICE_USD}, such as 10 or 2.50 "
    "(0 lets nothing be spent)"
)


def _dollars(raw: str) -> CostEstimate | None:
    """A budget amount, or ``None`` when it is not one (not a number, negative, too big)."""
    try:
        amount = Decimal(raw.strip().removeprefix("$"))
    except ArithmeticError:
        return None
    if not amount.is_finite() or not 0 <= amount <= MAX_PRICE_USD:
        return None
    return CostEstimate(amount)


def _budget(env: Mapping[str, str], key: str, problems: list[str]) -> CostEstimate | None:
    raw = _clean(env, key)
    if raw is None:
        return None
    amount = _dollars(raw)
    if amount is None:
        problems.append(f"{key}={raw!r} {DOLLARS_RULE}.")
    return amount


def _budgets(env: Mapping[str, str], problems: list[str]) -> Budgets:
    """``IMG_BUDGET_*`` and the per-person ``IMG_BUDGETS`` (each bad entry named)."""
    overrides: dict[str, CostEstimate] = {}
    for entry in (e.strip() for e in env.get("IMG_BUDGETS", "").split(",")):
        if not entry:
            continue
        email, equals, raw = entry.partition("=")
        key = normalise_email(email)
        amount = _dollars(raw) if equals else None
        if key is None or amount is None:
            problems.append(
                f"IMG_BUDGETS entry {entry!r} is not email=dollars: write entries like "
                f"alice@example.com=20, separated by commas; the amount {DOLLARS_RULE}."
            )
        elif key in overrides:
            problems.append(f"IMG_BUDGETS names {key} twice; keep one entry.")
        else:
            overrides[key] = amount
    return Budgets(
        user_daily=_budget(env, "IMG_BUDGET_USER_DAILY", problems),
        user_monthly=_budget(env, "IMG_BUDGET_USER_MONTHLY", problems),
        total_monthly=_budget(env, "IMG_BUDGET_TOTAL_MONTHLY", problems),
        per_person_monthly=overrides,
        admins_exempt=_on_off(env, "IMG_BUDGET_ADMINS_EXEMPT", False, problems),
    )


def _call_limits(env: Mapping[str, str], problems: list[str]) -> CallLimits:
    """How many images a minute and at once (per person), and at once for the server."""
    return CallLimits(
        rate_per_minute=_whole_number(
            env, "IMG_RATE_PER_MINUTE", DEFAULT_RATE_PER_MINUTE, (1, 100_000), problems
        ),
        max_concurrent=_whole_number(
            env, "IMG_MAX_CONCURRENT", DEFAULT_MAX_CONCURRENT, (1, 1000), problems
        ),
        max_concurrent_total=_whole_number(
            env, "IMG_MAX_CONCURRENT_TOTAL", DEFAULT_MAX_CONCURRENT_TOTAL, (1, 10_000), problems
        ),
    )


def _log_level(env: Mapping[str, str], problems: list[str]) -> str:
    log_level = (_clean(env, "IMG_LOG_LEVEL") or "INFO").upper()
    if log_level not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
        problems.append(f"IMG_LOG_LEVEL={log_level!r} is not one of DEBUG, INFO, WARNING, ERROR.")
        return "INFO"
    return log_level


def _unknown_variables(env: Mapping[str, str], also_known: frozenset[str]) -> list[str]:
    return [
        f"{key} is not a setting this server knows; check its spelling."
        for key in sorted(env)
        if key.startswith("IMG_") and key not in KNOWN_VARIABLES and key not in also_known
    ]


def _check_root(root: Path, problems: list[str]) -> None:
    """The data folder must be a writable folder, or creatable in one (nothing is created)."""
    existing = root
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        problems.append(
            f"IMG_ROOT={str(root)!r} cannot be created: {str(existing)!r} is not a folder."
        )
    elif not os.access(existing, os.W_OK | os.X_OK):
        problems.append(f"IMG_ROOT={str(root)!r} is not writable by this process.")


def _host(env: Mapping[str, str], auth_disabled: bool, notes: list[str]) -> str:
    """``IMG_HOST``; unset, loopback with login off (the Host check is no lock), else all."""
    chosen = _clean(env, "IMG_HOST")
    if chosen is None:
        return "127.0.0.1" if auth_disabled else "0.0.0.0"  # noqa: S104
    if auth_disabled and not is_loopback(chosen.strip("[]")):
        notes.append(
            f"LOGIN IS OFF AND IMG_HOST={chosen} LISTENS BEYOND THIS MACHINE: anyone who can "
            "reach this address and port can generate images at your cost and see every "
            "image (a Host header check is no lock). Unset IMG_HOST, or publish the port "
            "on loopback only (docker run -p 127.0.0.1:8766:8766)."
        )
    return chosen


def _port(raw: str | None, problems: list[str]) -> int:
    if raw is None or not raw.strip():
        return DEFAULT_PORT
    if raw.strip().isdigit() and 0 < int(raw) < 65536:
        return int(raw)
    problems.append(f"IMG_PORT={raw!r} is not a port number between 1 and 65535.")
    return DEFAULT_PORT


def _positive_float(env: Mapping[str, str], key: str, default: float, problems: list[str]) -> float:
    raw = _clean(env, key)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0 < value < 3600:
        problems.append(f"{key}={raw!r} must be a number of seconds between 0 and 3600.")
        return default
    return value


def _whole_number(
    env: Mapping[str, str],
    key: str,
    default: int,
    bounds: tuple[int, int],
    problems: list[str],
) -> int:
    raw = _clean(env, key)
    if raw is None:
        return default
    low, high = bounds
    if not raw.isdigit() or not low <= int(raw) <= high:
        problems.append(f"{key}={raw!r} must be a whole number from {low} to {high}.")
        return default
    return int(raw)


def _public_url(
    env: Mapping[str, str], host: str, port: int, auth_disabled: bool, problems: list[str]
) -> str:
    raw = _clean(env, "IMG_PUBLIC_URL")
    if raw is None:
        if auth_disabled:
            shown = "127.0.0.1" if host in {"0.0.0.0", "::"} else host  # noqa: S104
            return f"http://{shown}:{port}"
        problems.append(
            "IMG_PUBLIC_URL is required: the https address people reach this server at, "
            "e.g. https://images.example.com (no path)."
        )
        return "https://invalid.invalid"
    parts = urlsplit(raw)
    loopback = (parts.hostname or "") in LOOPBACK_HOSTS
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        problems.append(f"IMG_PUBLIC_URL={raw!r} is not an absolute http(s) URL.")
    elif parts.scheme != "https" and not (auth_disabled or loopback):
        problems.append(
            f"IMG_PUBLIC_URL={raw!r} must use https: OAuth tokens and session cookies must "
            "not travel in clear text. Put a TLS-terminating reverse proxy in front."
        )
    elif parts.path not in {"", "/"} or parts.query or parts.fragment:
        problems.append(f"IMG_PUBLIC_URL={raw!r} must be just scheme and host, without a path.")
    return f"{parts.scheme}://{parts.netloc}"


def _backend(
    raw: str | None,
    api_key: str | None,
    auth_disabled: bool,
    problems: list[str],
    notes: list[str],
) -> Literal["gemini", "placeholder"]:
    choice = (raw or "auto").strip().lower()
    if choice not in {"auto", "gemini", "placeholder"}:
        problems.append(f"IMG_BACKEND={raw!r} must be auto, gemini or placeholder.")
        return "placeholder"
    if choice == "placeholder":
        notes.append("IMG_BACKEND=placeholder: images are offline placeholders, not Gemini output.")
        return "placeholder"
    if api_key:
        return "gemini"
    if choice == "auto" and auth_disabled:
        notes.append(
            "GEMINI_API_KEY is not set: using the offline placeholder backend. "
            "Set the key to generate real images."
        )
        return "placeholder"
    problems.append(
        "GEMINI_API_KEY is required to generate images (create one in Google AI Studio), "
        "or set IMG_BACKEND=placeholder for an offline demo."
    )
    return "gemini"
