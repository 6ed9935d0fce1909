"""Client ID Metadata Documents (CIMD) and the switch that leaves them the only way in.

With CIMD a client's ``client_id`` is an https URL; the server fetches the JSON
document there and takes the client's name and redirect URIs from it instead of from a
dynamic registration (RFC 7591). fastmcp's OAuth proxy does the fetching (through an
SSRF-guarded fetcher: https only, no private or loopback addresses, small, no
redirects) and checks each ``/authorize`` redirect URI against both the document and
the server's allow-list. This module adds:

* ``document_speaks_for``: the document must name exactly the URL it was fetched from
  as its ``client_id``, checked here again whatever fetcher is in use;
* ``install_fetcher``: the seam through which tests, and only tests, hand the proxy a
  fetcher that reaches a fake client on loopback (the composition root passes ``None``
  in production, keeping fastmcp's own);
* ``registration_refused``: what ``POST /register`` answers when dynamic registration
  is turned off (``IMG_DYNAMIC_REGISTRATION=0``).
"""

from __future__ import annotations

from typing import Final

from fastmcp.server.auth.cimd import CIMDClientManager, CIMDDocument, CIMDFetcher
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

__all__ = [
    "REGISTRATION_PATH",
    "CIMDFetcher",
    "document_speaks_for",
    "install_fetcher",
    "registration_refused_route",
]

REGISTRATION_PATH: Final = "/register"
REGISTRATION_OFF: Final = (
    "Dynamic client registration is turned off on this server. Use a Client ID "
    "Metadata Document: send the https URL of your client's metadata document as "
    "client_id."
)


def document_speaks_for(client_id: str, document: CIMDDocument) -> bool:
    """Whether ``document`` names ``client_id``, the URL it came from, as its own.

    An exact string comparison, as the CIMD draft asks: no trailing-slash leniency.
    """
    return str(document.client_id) == client_id


def install_fetcher(manager: CIMDClientManager | None, fetcher: CIMDFetcher | None) -> None:
    """Make ``manager`` fetch documents with ``fetcher`` (``None``: keep fastmcp's).

    fastmcp builds its ``CIMDFetcher`` inside the proxy with no parameter for it; its
    manager's ``_fetcher`` attribute is the one place it is used.
    """
    if fetcher is None:
        return
    if manager is None:
        msg = "a CIMD fetcher was given but CIMD is not enabled"
        raise ValueError(msg)
    manager._fetcher = fetcher


async def _refuse_registration(_request: Request) -> Response:
    """RFC 7591 has no code for 'registration is off'; ``access_denied`` and a sentence."""
    return JSONResponse(
        {"error": "access_denied", "error_description": REGISTRATION_OFF},
        status_code=403,
        headers={"Cache-Control": "no-store"},
    )


def registration_refused_route() -> Route:
    """``POST /register`` when dynamic registration is off: a clear 403, nothing stored."""
    return Route(REGISTRATION_PATH, _refuse_registration, methods=["POST"])
