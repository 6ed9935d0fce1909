"""A benchmark server in its own process: the real app, or a bare Starlette file server.

``python -m bench.server --port P --root DIR [--png FILE --delay S]`` serves the whole
product (``build_app``, dev settings: login off) with a backend that answers every
generation with FILE after S seconds. ``--bare-dir DIR`` instead serves the files in DIR
at ``/i/{name}`` with Starlette's own ``FileResponse``, the yardstick for ``/i/``.
Both listen on 127.0.0.1 only, with access logs off, under the same uvicorn settings.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp

from bench.common import LOOPBACK, PrerenderedBackend, dev_settings_env
from image_server.app import build_app
from image_server.process_tuning import freeze_what_was_built, tune_process
from image_server.settings import load_settings


def bare_file_app(directory: Path) -> Starlette:
    """``GET /i/{name}`` answered by ``FileResponse`` for the files in ``directory``.

    The names are listed once at start-up, so a request costs one dict lookup before
    ``FileResponse`` does its own work, and nothing outside the folder can be named.
    """
    files = {path.name: path for path in directory.iterdir() if path.is_file()}

    async def health(_: Request) -> Response:
        return JSONResponse({"ok": True})

    async def serve(request: Request) -> Response:
        path = files.get(request.path_params["name"])
        if path is None:
            return PlainTextResponse("Not found", status_code=404)
        return FileResponse(path, media_type="image/png")

    return Starlette(routes=[Route("/health", health), Route("/i/{name}", serve)])


def product_app(root: Path, port: int, png: Path | None, delay: float) -> Starlette:
    """The real server with dev settings; a prerendered backend when ``png`` is given.

    Started as ``image-mcp serve`` starts it: allocator tuned first, heap frozen after.
    """
    tune_process()
    settings = load_settings(dev_settings_env(root, port), dev=True)
    backend = PrerenderedBackend(png.read_bytes(), delay) if png is not None else None
    app = build_app(settings, backend=backend)
    freeze_what_was_built()
    return app


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the options and serve until terminated."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--root", type=Path, help="data folder of the real app")
    parser.add_argument("--png", type=Path, help="the image every generation returns")
    parser.add_argument("--delay", type=float, default=0.0, help="backend latency in seconds")
    parser.add_argument("--bare-dir", type=Path, help="serve these files with FileResponse")
    args = parser.parse_args(argv)
    app: ASGIApp
    if args.bare_dir is not None:
        app = bare_file_app(args.bare_dir)
    elif args.root is not None:
        app = product_app(args.root, args.port, args.png, args.delay)
    else:
        parser.error("give --root (the real app) or --bare-dir")
    uvicorn.run(
        app, host=LOOPBACK, port=args.port, log_config=None, access_log=False, lifespan="auto"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
