"""The ``image-mcp`` command: ``serve`` for production, ``dev`` for a local open server."""

from __future__ import annotations

import argparse
import asyncio
import errno
import logging
import os
import socket
import sys
from collections.abc import Sequence

import uvicorn

from image_core.errors import ImageMcpError, InvalidConfiguration
from image_server.about import PRODUCT_NAME, product_version
from image_server.app import build_app, check_models_once
from image_server.logging_setup import configure_logging
from image_server.process_tuning import freeze_what_was_built, tune_process
from image_server.routes import DASHBOARD_MOUNT, MCP_PATH
from image_server.settings import Settings, SettingsError, load_settings

log = logging.getLogger("image_server")


def _port_number(raw: str) -> str:
    if raw.isdigit() and 0 < int(raw) < 65536:
        return raw
    msg = f"{raw!r} is not a port number between 1 and 65535"
    raise argparse.ArgumentTypeError(msg)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PRODUCT_NAME,
        description="Self-hosted MCP server that generates images with Gemini.",
    )
    parser.add_argument(
        "--version", action="version", version=f"{PRODUCT_NAME} {product_version()}"
    )
    where = argparse.ArgumentParser(add_help=False)
    where.add_argument("--host", help="address to listen on (overrides IMG_HOST)")
    where.add_argument("--port", type=_port_number, help="port to listen on (overrides IMG_PORT)")
    where.add_argument("--root", help="data folder (overrides IMG_ROOT)")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser(
        "serve",
        parents=[where],
        help="run with the configuration in the environment (production)",
    )
    commands.add_parser(
        "dev",
        parents=[where],
        help="run locally with login disabled, on 127.0.0.1, data in ./.localdata; "
        "uses Gemini if GEMINI_API_KEY is set, else offline placeholder images",
    )
    check = commands.add_parser(
        "check", parents=[where], help="validate the environment's configuration and exit"
    )
    check.add_argument(
        "--online",
        action="store_true",
        help="also ask Gemini's models list whether each configured model id still exists",
    )
    return parser


def _flags(args: argparse.Namespace) -> dict[str, str]:
    """The flags given, keyed by the variable each one overrides."""
    given = {"IMG_HOST": args.host, "IMG_PORT": args.port, "IMG_ROOT": args.root}
    return {key: value for key, value in given.items() if value is not None}


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the command line, validate settings, then serve until interrupted."""
    args = _parser().parse_args(argv)
    try:
        settings = load_settings(os.environ, dev=args.command == "dev", overrides=_flags(args))
    except SettingsError as exc:
        print("image-mcp cannot start; fix these settings:", file=sys.stderr)
        for problem in exc.problems:
            print(f"  - {problem}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level, _secrets(settings))
    for warning in settings.warnings:
        log.warning(warning, extra={"event": "config_warning"})
    if args.command == "check":
        print("Configuration is valid.")
        return asyncio.run(check_models(settings)) if args.online else 0
    tune_process()
    try:
        app = build_app(settings)
        listener = listen(settings.host, settings.port)
    except ImageMcpError as exc:
        print(f"image-mcp cannot start: {exc.message}", file=sys.stderr)
        return 2
    freeze_what_was_built()
    log.info(
        "starting",
        extra={
            "event": "start",
            "version": product_version(),
            "url": settings.public_url,
            "mcp": f"{settings.public_url}{MCP_PATH}",
            "listen": f"{settings.host}:{settings.port}",
            "root": str(settings.root),
            "backend": settings.backend,
            "auth": "disabled" if settings.auth_disabled else "google",
        },
    )
    if settings.dev:
        print(banner(settings), flush=True)
    config = uvicorn.Config(
        app, host=settings.host, port=settings.port, log_config=None, access_log=True
    )
    uvicorn.Server(config).run(sockets=[listener])
    return 0


async def check_models(settings: Settings) -> int:
    """``check --online``: one line per configured model; 1 when one is missing or unknown."""
    if settings.backend != "gemini" or not settings.gemini_api_key:
        print("Models not checked: the offline placeholder backend makes no Gemini calls.")
        return 0
    report = await check_models_once(settings)
    if report.error is not None:
        print(f"Models not checked: {report.error}.")
        return 1
    for status in report.statuses:
        print(("ok       " if status.available else "MISSING  ") + status.line())
    return 1 if report.missing else 0


def banner(settings: Settings) -> str:
    """The one line a person running ``image-mcp dev`` looks for among the JSON logs."""
    login = "login off" if settings.auth_disabled else "Google login"
    images = "placeholder images" if settings.backend == "placeholder" else "Gemini images"
    return (
        f"{PRODUCT_NAME} {product_version()} dev server: "
        f"dashboard {settings.public_url}{DASHBOARD_MOUNT}  "
        f"MCP {settings.public_url}{MCP_PATH}  ({login}, {images})"
    )


def listen(host: str, port: int) -> socket.socket:
    """Bind the listening socket before serving, so a taken port is one clear message.

    The socket names its protocol (``IPPROTO_TCP``) explicitly: asyncio switches Nagle's
    algorithm off (``TCP_NODELAY``) only on connections whose socket says so, and
    ``socket.create_server`` leaves it 0. With Nagle on, every MCP answer sent in parts
    (headers, then an SSE event, then the end) waited about 40 ms for the client's
    delayed acknowledgement.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind((host, port))
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            msg = (
                f"port {port} on {host} is already in use. Stop the other server, "
                "or choose another port with --port or IMG_PORT."
            )
        else:
            msg = (
                f"cannot listen on {host} port {port} ({exc.strerror}). "
                "Check --host / IMG_HOST and --port / IMG_PORT."
            )
        raise InvalidConfiguration(msg) from None
    return sock


def _secrets(settings: Settings) -> list[str | None]:
    return [settings.gemini_api_key, settings.google_client_secret, settings.jwt_signing_key]


if __name__ == "__main__":
    raise SystemExit(main())
