"""The image's public name, in one home: the uuid4 id, its file names, and parsing them.

A generation is known by a random uuid4, spelled only in canonical lower case. The PNG
is ``{uuid}.png`` (the name handed to callers and served publicly), its record is
``{uuid}.json`` and its thumbnail ``{uuid}{extension}``. Every path an adapter builds
starts from an id that passed ``check_image_id``, never from caller text.

A photo a person uploads is known as ``upload-{uuid}.png`` or ``upload-{uuid}.jpg`` (the
extension says how it was stored); it is never a public name, so ``/i/`` cannot serve
it, and its files live in a folder of their own under the same uuid rules.

Drivers that accept richer references (a URL of the served image) reduce them to a
name first; this module knows names and ids only.
"""

from __future__ import annotations

import re
import uuid
from typing import Final, TypeGuard

#: Canonical lower-case uuid4 text: the only id spelling this product writes or accepts.
UUID4_PATTERN: Final = r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}"
IMAGE_SUFFIX: Final = ".png"
RECORD_SUFFIX: Final = ".json"
#: Who owns the generations made while sign-in is switched off (local development).
LOCAL_OWNER: Final = "local@localhost"

UPLOAD_PREFIX: Final = "upload-"
#: The stored photo's extension by its media type (JPEG for photos, PNG with transparency).
UPLOAD_EXTENSIONS: Final = {"image/jpeg": ".jpg", "image/png": ".png"}

_ID = re.compile(UUID4_PATTERN)
_UPLOAD_NAME = re.compile(rf"{re.escape(UPLOAD_PREFIX)}({UUID4_PATTERN})(?:\.png|\.jpg)?")
_IMAGE_NAME = re.compile(rf"({UUID4_PATTERN})(?:{re.escape(IMAGE_SUFFIX)})?")
_PUBLIC_NAME = re.compile(rf"({UUID4_PATTERN}){re.escape(IMAGE_SUFFIX)}")
_RECORD_NAME = re.compile(rf"({UUID4_PATTERN}){re.escape(RECORD_SUFFIX)}")


def is_image_id(value: object) -> TypeGuard[uuid.UUID]:
    """Whether ``value`` is a ``uuid.UUID`` of version 4."""
    return isinstance(value, uuid.UUID) and value.version == 4


def check_image_id(image_id: object) -> uuid.UUID:
    """``image_id`` if it is a uuid4, else ``ValueError``: no other value reaches a path."""
    if not is_image_id(image_id):
        raise ValueError("image ids must be uuid4 values")
    return image_id


def is_id_text(text: str) -> bool:
    """Whether ``text`` is exactly a canonical lower-case uuid4."""
    return _ID.fullmatch(text) is not None


def image_file_name(image_id: uuid.UUID) -> str:
    """The public PNG name, ``{uuid}.png``."""
    return f"{check_image_id(image_id)}{IMAGE_SUFFIX}"


def record_file_name(image_id: uuid.UUID) -> str:
    """The record (sidecar) name, ``{uuid}.json``."""
    return f"{check_image_id(image_id)}{RECORD_SUFFIX}"


def record_file_name_of(id_text: str) -> str:
    """The record name of an id already known to be canonical text (from an index)."""
    return f"{id_text}{RECORD_SUFFIX}"


def thumbnail_file_name(image_id: uuid.UUID, extension: str) -> str:
    """The thumbnail name, ``{uuid}{extension}``; the extension records the media type."""
    return f"{check_image_id(image_id)}{extension}"


def parse_image_name(name: str) -> uuid.UUID | None:
    """The uuid4 in exactly ``{uuid}.png`` or a bare uuid, else ``None``.

    Anything else (paths, URLs, upper case, other suffixes, spaces) is ``None``: only the
    canonical lower-case names this product hands out are accepted.
    """
    match = _IMAGE_NAME.fullmatch(name)
    return uuid.UUID(match.group(1)) if match else None


def parse_public_name(name: object) -> uuid.UUID | None:
    """The id in exactly ``{uuid}.png`` (what ``/i/`` serves), or ``None`` for anything else."""
    if not isinstance(name, str):
        return None
    match = _PUBLIC_NAME.fullmatch(name)
    return uuid.UUID(match.group(1)) if match else None


def record_id_text(file_name: str) -> str | None:
    """The id text of a ``{uuid}.json`` record name, or ``None`` (a fast scan: no UUID built)."""
    match = _RECORD_NAME.fullmatch(file_name)
    return match.group(1) if match else None


def upload_extension(mime_type: str) -> str:
    """``.jpg`` or ``.png`` for a stored photo's media type (``ValueError`` for others)."""
    extension = UPLOAD_EXTENSIONS.get(mime_type)
    if extension is None:
        raise ValueError(f"uploads are stored as JPEG or PNG, not {mime_type!r}")
    return extension


def upload_name(upload_id: uuid.UUID, mime_type: str) -> str:
    """The name a person passes as a reference: ``upload-{uuid}.jpg`` (or ``.png``)."""
    return f"{UPLOAD_PREFIX}{check_image_id(upload_id)}{upload_extension(mime_type)}"


def upload_file_name(upload_id: uuid.UUID, mime_type: str) -> str:
    """The stored photo's file name in the uploads folder: ``{uuid}.jpg`` or ``{uuid}.png``."""
    return f"{check_image_id(upload_id)}{upload_extension(mime_type)}"


def parse_upload_name(name: str) -> uuid.UUID | None:
    """The uuid4 in exactly ``upload-{uuid}``, ``upload-{uuid}.png`` or ``.jpg``, else ``None``.

    As for generations, only canonical lower-case names are accepted.
    """
    match = _UPLOAD_NAME.fullmatch(name)
    return uuid.UUID(match.group(1)) if match else None
