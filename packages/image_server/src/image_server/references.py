"""What a caller may pass as a reference image, reduced to the name the core knows.

The MCP tool hands out both a file name (``{uuid}.png``) and the full-size URL this
server serves it at (``https://host/i/{uuid}.png``). The URL shape is the shell's, so
the shell turns a URL of its own ``/i/`` route back into the bare name before the
request reaches the core; the core then accepts names and ids only
(``image_core.names.parse_image_name``).
"""

from __future__ import annotations

from urllib.parse import urlsplit

from image_core.names import parse_image_name

IMAGE_ROUTE_PREFIX = "/i/"


def reference_name(text: str) -> str:
    """The file name inside an ``http(s)://host/i/{uuid}.png`` URL; any other text unchanged.

    Only a URL of the image route with a valid name in it is reduced, so whatever the
    core refuses is refused with the text exactly as the caller wrote it.
    """
    stripped = text.strip()
    if "/" not in stripped:
        return text
    parts = urlsplit(stripped)
    if parts.scheme not in {"http", "https"} or not parts.netloc or parts.query:
        return text
    name = parts.path.removeprefix(IMAGE_ROUTE_PREFIX)
    if not parts.path.startswith(IMAGE_ROUTE_PREFIX) or parse_image_name(name) is None:
        return text
    return name


def image_url(public_url: str, file_name: str) -> str:
    """The public URL of a stored image: the base URL, the ``/i/`` route, the name."""
    return f"{public_url}{IMAGE_ROUTE_PREFIX}{file_name}"
