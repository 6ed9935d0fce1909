"""Serve the OAuth end-to-end app in a process of its own (``python -m``), for tests
that need two real server processes sharing one state folder.

The app is the one ``tests/e2e/test_oauth_flow.py`` builds: the real OAuth proxy in
front of a fake Google whose address is given on the command line.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import uvicorn

from tests.e2e.test_oauth_flow import SIGNING_KEY, build_app
from tests.fakes.fake_google import FakeGoogle


@dataclass(frozen=True)
class _FakeGoogleElsewhere:
    """The one thing ``build_app`` reads of a FakeGoogle: where it listens."""

    base_url: str


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--public-url", required=True)
    parser.add_argument("--state", type=Path, required=True)
    parser.add_argument("--google", required=True)
    args = parser.parse_args()
    google = cast("FakeGoogle", _FakeGoogleElsewhere(args.google))
    app, _ = build_app(google, base_url=args.public_url, storage_dir=args.state, key=SIGNING_KEY)
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_config=None, lifespan="on")


if __name__ == "__main__":
    main()
