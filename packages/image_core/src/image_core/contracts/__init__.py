"""Contract suites for every port, shipped so any adapter can prove it fits.

Like fsspec's abstract tests: each ``...Contract`` class holds the test methods one port
must pass and asks for an adapter factory fixture; subclass it as ``Test...`` in your
own test module, provide the fixture, and pytest runs the whole contract against your
adapter. This project's ``tests/contract/`` does exactly that for the filesystem and
in-memory adapters, Pillow, Gemini (against a fake server) and the placeholder.

This subpackage needs ``pytest`` and ``hypothesis`` (your test dependencies; the rest
of ``image_core`` never imports them). See docs/library.md for an example.
"""

from image_core.contracts.backend import (
    BackendFactory,
    FailingImageBackendContract,
    ImageBackendContract,
)
from image_core.contracts.codec import DecodingImageCodecContract, ImageCodecContract
from image_core.contracts.image_store import ImageStoreContract
from image_core.contracts.metadata import MetadataRepositoryContract
from image_core.contracts.prefs import PrefStoreContract
from image_core.contracts.samples import AdapterFactory, fresh
from image_core.contracts.uploads import UploadStoreContract

__all__ = [
    "AdapterFactory",
    "BackendFactory",
    "DecodingImageCodecContract",
    "FailingImageBackendContract",
    "ImageBackendContract",
    "ImageCodecContract",
    "ImageStoreContract",
    "MetadataRepositoryContract",
    "PrefStoreContract",
    "UploadStoreContract",
    "fresh",
]
