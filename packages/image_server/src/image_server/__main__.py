"""The ``image-mcp`` command: ``serve`` for production, ``dev`` for a local open server."""

from __future__ import annotations

import argparse
import gc
import logging
import os
import sys
from collections.abc import Sequence

import uvicorn

from image_core.errors import ImageMcpError
from image_server.app import build_app
from image_server.logging_setup import configure_logging
from image_server.settings import Settings, SettingsError, load_settings

log = logging.getLogger("image_server")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="image-mcp",
        description="Self-hosted MCP server that generates images with Gemini.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("serve", help="run with the configuration in the environment (production)")
    commands.add_parser(
        "dev",
        help="run locally with login disabled, on 127.0.0.1, data in ./.localdata; "
        "uses Gemini if GEMINI_API_KEY is set, else offline placeholder images",
    )
    commands.add_parser("check", help="validate the environment's configuration and exit")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the command line, validate settings, then serve until interrupted."""
    args = _parser().parse_args(argv)
    try:
        settings = load_settings(os.environ, dev=args.command == "dev")
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
        return 0
    try:
        app = build_app(settings)
    except ImageMcpError as exc:
        print(f"image-mcp cannot start: {exc.message}", file=sys.stderr)
        return 2
    # Everything built so far lives as long as the process: move it out of the
    # collector's sight so full collections stay short under load.
    gc.collect()
    gc.freeze()
    log.info(
        "starting",
        extra={
            "event": "start",
            "url": settings.public_url,
            "mcp": f"{settings.public_url}/mcp",
            "listen": f"{settings.host}:{settings.port}",
            "root": str(settings.root),
            "backend": settings.backend,
            "auth": "disabled" if settings.auth_disabled else "google",
        },
    )
    uvicorn.run(app, host=settings.host, port=settings.port, log_config=None, access_log=True)
    return 0


def _secrets(settings: Settings) -> list[str | None]:
    return [settings.gemini_api_key, settings.google_client_secret, settings.jwt_signing_key]


if __name__ == "__main__":
    raise SystemExit(main())
