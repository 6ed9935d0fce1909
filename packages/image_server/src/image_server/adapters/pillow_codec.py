"""Pillow implementation of the ``ImageCodec`` port.

Every byte string handled here is untrusted: references come from users, generations
from a remote API. So the real format is sniffed from the bytes (never the claimed
mime type), only PNG, JPEG and WebP are parsed, the pixel count is checked from the
header *before* anything is decoded, and every failure becomes an ``InvalidImage``
whose message says what is wrong and what the limit is.

Plugin classes are constructed directly instead of going through ``Image.open``:
that keeps Pillow's other format parsers away from untrusted data and skips Pillow's
global ``MAX_IMAGE_PIXELS`` check, which would warn (or, with warnings as errors,
raise) before our own per-instance limit is consulted. Pillow's global settings are
never changed.
"""

from __future__ import annotations

import io
import logging
import struct
import threading
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from enum import Enum
from typing import IO, Any, Final, Generic, TypeVar, cast

from isal import isal_zlib
from PIL import Image, JpegImagePlugin, PngImagePlugin, WebPImagePlugin
from PIL.ImageFile import ImageFile

from image_core.domain import EncodedImage, NormalisedPhoto, ProcessedImage
from image_core.errors import InvalidImage
from image_core.ports import ImageProcessing
from image_server.adapters import png_stream
from image_server.adapters.arriving_file import ArrivingFile, JoinedImageData
from image_server.adapters.encoded_bytes import encoded
from image_server.adapters.pillow_photos import encode_kept, in_srgb, upright, without_metadata
from image_server.adapters.strip_shrink import fit_size, shrink, shrink_to

_log = logging.getLogger("image_server.codec")

DEFAULT_MAX_PIXELS: Final = 40_000_000
DEFAULT_MAX_PREVIEW_BYTES: Final = 150_000
"""The preview lands in the calling model's context: small, well under any client's cap."""

_REFERENCE_QUALITIES: Final = (90, 80, 70)
"""JPEG/WebP qualities tried for a reference copy before it is made smaller."""

MAX_JPEG_SCANS: Final = 100
"""A progressive JPEG with thousands of tiny scans costs minutes of CPU to decode."""

_PNG_SIGNATURE: Final = b"\x89PNG\r\n\x1a\n"
T = TypeVar("T")
_GENERATED: Final = "The generated image"
_UPLOADED: Final = "The photo"
_EARLY_READ: Final = 1 << 20
"""Bytes of image data per read while a PNG arrives: few trips back into Python."""
_WHITE: Final = (255, 255, 255)
# Shrinking a reference copy step by step (3/4 each time) keeps bicubic's sharpness.
_RESAMPLE: Final = Image.Resampling.BICUBIC
# A JPEG thumbnail is decoded at the smallest scale libjpeg offers above this ratio.
_REDUCING_GAP: Final = 1.0
_PNG_MODES: Final = frozenset({"1", "L", "LA", "I", "I;16", "P", "RGB", "RGBA"})
_SIXTEEN_BIT_GREY: Final = frozenset({"I", "I;16", "I;16B", "I;16L", "I;16N"})
# Errors Pillow raises for bad input. Warnings appear only when a filter turns them
# into errors (as the test suite does); they mean the same thing there.
_DECODE_ERRORS: Final = (
    OSError,
    SyntaxError,
    ValueError,
    EOFError,
    IndexError,
    struct.error,
    zlib.error,
    Warning,
)


class _Format(Enum):
    """The formats we accept, with their mime types."""

    PNG = "image/png"
    JPEG = "image/jpeg"
    WEBP = "image/webp"

    @property
    def label(self) -> str:
        return "WebP" if self is _Format.WEBP else self.name


class PillowImageCodec:
    """Checks and converts images with Pillow; see the module docstring for the rules.

    ``max_pixels`` bounds width x height of anything decoded (40 megapixels is ten
    times a 4K square, and about 160 MB of RGBA); ``max_preview_bytes`` bounds the
    inline preview.
    """

    def __init__(
        self,
        *,
        max_pixels: int = DEFAULT_MAX_PIXELS,
        max_preview_bytes: int = DEFAULT_MAX_PREVIEW_BYTES,
        preview_quality: int = 70,
        thumbnail_quality: int = 75,
        png_compress_level: int = 1,
        max_concurrent_decodes: int = 2,
    ) -> None:
        if max_concurrent_decodes < 1:
            raise ValueError("max_concurrent_decodes must be at least 1")
        # Decoding is CPU-bound (more threads than cores gain nothing) and a 4K image
        # needs ~50 MB decoded: bounding it keeps memory flat under bursts.
        self._decode_slots = threading.BoundedSemaphore(max_concurrent_decodes)
        # Early decodes wait on downloads, so they get slots of their own: half as many,
        # since each holds a whole decoded image (64 MB at 4K) while the rest arrives.
        self._early_slots = threading.BoundedSemaphore(max(1, max_concurrent_decodes // 2))
        for name, value in (
            ("max_pixels", max_pixels),
            ("max_preview_bytes", max_preview_bytes),
        ):
            if value < 1:
                raise ValueError(f"{name} must be positive, not {value}")
        for name, value in (
            ("preview_quality", preview_quality),
            ("thumbnail_quality", thumbnail_quality),
        ):
            if not 1 <= value <= 100:
                raise ValueError(f"{name} must be between 1 and 100, not {value}")
        if not 0 <= png_compress_level <= 9:
            raise ValueError(
                f"png_compress_level must be between 0 and 9, not {png_compress_level}"
            )
        self._max_pixels = max_pixels
        self._max_preview_bytes = max_preview_bytes
        self._preview_quality = preview_quality
        self._thumbnail_quality = thumbnail_quality
        # Level 1 encodes a 4K photo about 3x faster than the default 6 for ~10 % more
        # bytes; it only matters when the backend sent JPEG or WebP.
        self._png_compress_level = png_compress_level

    def early_slot_free(self) -> bool:
        """Take an early-decode slot if one is free now; ``release_early_slot`` gives it back."""
        return self._early_slots.acquire(blocking=False)

    def release_early_slot(self) -> None:
        """Give back a slot taken by ``early_slot_free``."""
        self._early_slots.release()

    def decode_slot(self) -> threading.BoundedSemaphore:
        """The slots bounding image work on the CPU, to hold while doing such work."""
        return self._decode_slots

    @property
    def max_pixels(self) -> int:
        """Largest width x height this codec will decode."""
        return self._max_pixels

    def process(
        self, data: bytes, preview_max_side: int, thumbnail_max_side: int
    ) -> ProcessedImage:
        """Decode once; return the PNG to store, a JPEG preview and a WebP thumbnail.

        A valid PNG is stored as received (lossless and no re-encoding cost), minus any
        bytes after its ``IEND`` chunk; anything else is re-encoded as PNG.
        """
        _check_side("preview_max_side", preview_max_side)
        _check_side("thumbnail_max_side", thumbnail_max_side)
        with self._decode_slots:
            return self._process(data, preview_max_side, thumbnail_max_side)

    def _process(
        self, data: bytes, preview_max_side: int, thumbnail_max_side: int
    ) -> ProcessedImage:
        kind = _identify(data, _GENERATED)
        png_end = _verify_png_chunks(data, _GENERATED) if kind is _Format.PNG else None
        with _decoding(_GENERATED, kind):
            image = self._open(data, kind, _GENERATED)
            image.load()
            display = _displayable(image)
        png = data[:png_end] if png_end is not None else self._encode_png(image)
        preview, thumbnail = self._derive(display, preview_max_side, thumbnail_max_side)
        return ProcessedImage(png, display.width, display.height, preview, thumbnail)

    def _derive(
        self,
        display: Image.Image,
        preview_max_side: int,
        thumbnail_max_side: int,
        shrunk_preview: Image.Image | None = None,
    ) -> tuple[EncodedImage, EncodedImage]:
        """Preview and thumbnail of the decoded image, encoded side by side on two cores.

        The thumbnail is shrunk from the preview when the preview is at least its size
        (a quarter of the work at 1K), and encoded in a helper thread while this one
        encodes the preview. ``shrunk_preview`` is the preview already shrunk during
        the decode; it is the same image ``_fit`` makes here.
        """
        preview_image = shrunk_preview
        if preview_image is None:
            preview_image = _fit(display, _preview_side(display.size, preview_max_side))
        flat_preview = _flatten(preview_image)

        def thumbnail_encoded() -> EncodedImage:
            image = _flatten(_thumbnail_of(display, preview_image, thumbnail_max_side))
            if image is flat_preview:  # the same size: Pillow keeps a save's options on the
                image = image.copy()  # image, so one object must not be saved in two threads
            return self._encode_thumbnail(image)

        thumbnail = _beside(thumbnail_encoded)
        preview = self._encode_preview(flat_preview)
        return preview, thumbnail.result()

    def begin(self, preview_max_side: int, thumbnail_max_side: int) -> ImageProcessing:
        """Processing that decodes a PNG while it arrives, in a thread of its own.

        Decoding a photo-like 4K PNG takes about 0.3 s of CPU, about as long as its
        download from a fast link takes: overlapped, most of it is gone from the call.
        """
        _check_side("preview_max_side", preview_max_side)
        _check_side("thumbnail_max_side", thumbnail_max_side)
        return _EarlyPngProcessing(self, preview_max_side, thumbnail_max_side)

    def thumbnail(self, png: bytes, max_side: int) -> EncodedImage:
        """A WebP gallery thumbnail of a stored image (PNG, or JPEG/WebP if that is what it is)."""
        _check_side("max_side", max_side)
        with self._decode_slots:
            return self._thumbnail(png, max_side)

    def _thumbnail(self, png: bytes, max_side: int) -> EncodedImage:
        subject = "The stored image"
        kind = _identify(png, subject)
        with _decoding(subject, kind):
            image = self._open(png, kind, subject)
            if kind is _Format.JPEG:
                # Let libjpeg decode at 1/2..1/8 scale: most of the work skipped.
                width, height = fit_size(image.size, max_side)
                image.draft(None, (round(width * _REDUCING_GAP), round(height * _REDUCING_GAP)))
            image.load()
            display = _displayable(image)
        return self._encode_thumbnail(_flatten(_fit(display, max_side)))

    def preview(self, png: bytes, max_side: int) -> EncodedImage:
        """The inline preview of a stored image, made as ``process`` makes it."""
        _check_side("max_side", max_side)
        with self._decode_slots:
            subject = "The stored image"
            kind = _identify(png, subject)
            with _decoding(subject, kind):
                image = self._open(png, kind, subject)
                image.load()
                display = _displayable(image)
            side = _preview_side(image.size, max_side)
            return self._encode_preview(_flatten(_fit(display, side)))

    def prepare_reference(self, data: bytes, max_bytes: int) -> EncodedImage:
        """Check an image about to be sent as a reference; return what to send.

        Checks, cheapest first: real format, structure (chunk checksums for PNG, scan
        count for JPEG), pixel count from the header, then a full decode, so truncated
        or corrupt files are caught here and not by the backend. A file within
        ``max_bytes`` is sent as it is; a larger one (a photo-like 4K PNG is about
        20 MB) as a JPEG copy (WebP when it has transparency), smaller in quality and
        then in size until it fits. The stored file is never touched.
        """
        _check_side("max_bytes", max_bytes)
        subject = "The reference image"
        kind = _identify(data, subject)
        if kind is _Format.PNG:
            _verify_png_chunks(data, subject)
        with self._decode_slots, _decoding(subject, kind):
            image = self._open(data, kind, subject)
            if kind is _Format.JPEG and len(data) <= max_bytes:
                # A 1/8-scale decode still reads every entropy-coded byte, so truncation
                # is caught, at a fraction of the cost.
                image.draft(None, (1, 1))
            image.load()
            if len(data) <= max_bytes:
                return EncodedImage(data=data, mime_type=kind.value)
            copy = self._fit_bytes(_displayable(image), max_bytes)
        _log.debug(
            "reference re-encoded for the backend",
            extra={"from_bytes": len(data), "to_bytes": len(copy.data), "mime": copy.mime_type},
        )
        return copy

    def normalise_upload(
        self, data: bytes, max_side: int, thumbnail_max_side: int
    ) -> NormalisedPhoto:
        """A person's photo, checked as every image is, kept upright, sRGB and bare.

        The same guards as for any image come first (real format, PNG checksums, JPEG
        scan count, pixel count from the header) and the decode holds one of the decode
        slots; then ``pillow_photos`` turns, converts and strips it. The kept photo's
        long side is at most ``max_side`` (high-quality Lanczos); JPEG, or PNG with
        transparency.
        """
        _check_side("max_side", max_side)
        _check_side("thumbnail_max_side", thumbnail_max_side)
        kind = _identify(data, _UPLOADED)
        if kind is _Format.PNG:
            _verify_png_chunks(data, _UPLOADED)
        with self._decode_slots, _decoding(_UPLOADED, kind):
            image = self._open(data, kind, _UPLOADED)
            image.load()
            profile = image.info.get("icc_profile")
            photo = _displayable(in_srgb(upright(image), profile))
            target = fit_size(photo.size, max_side)
            if target != photo.size:
                photo = photo.resize(target, Image.Resampling.LANCZOS, reducing_gap=2.0)
            photo = without_metadata(photo)
            kept, mime_type = encode_kept(photo, png_compress_level=self._png_compress_level)
            thumbnail = self._encode_thumbnail(_flatten(_fit(photo, thumbnail_max_side)))
        return NormalisedPhoto(EncodedImage(kept, mime_type), photo.width, photo.height, thumbnail)

    def _fit_bytes(self, image: Image.Image, max_bytes: int) -> EncodedImage:
        """The image as JPEG (or WebP with alpha) within ``max_bytes``: quality, then size."""
        alpha = image.mode in ("RGBA", "LA")
        kind = _Format.WEBP if alpha else _Format.JPEG
        picture = image if alpha else _flatten(image)
        while True:
            for quality in _REFERENCE_QUALITIES:
                data = encoded(picture, kind.name, quality=quality)
                if len(data) <= max_bytes:
                    return EncodedImage(data=data, mime_type=kind.value)
            width, height = picture.size
            if max(width, height) <= 16:
                raise InvalidImage(
                    f"The reference image cannot be made smaller than {_human_bytes(max_bytes)}."
                )
            picture = picture.resize((max(1, width * 3 // 4), max(1, height * 3 // 4)), _RESAMPLE)

    def _open_png(self, file: IO[bytes], subject: str) -> ImageFile:
        """A PNG from a file, refused before decoding when it has too many pixels."""
        image = PngImagePlugin.PngImageFile(file)
        self._check_pixels(image.size, subject)
        return image

    def _open(self, data: bytes, kind: _Format, subject: str) -> ImageFile:
        """Parse the header only, then refuse images with too many pixels."""
        if kind is _Format.WEBP:
            # Pillow's WebP plugin hands the whole file to libwebp, which allocates the
            # canvas straight away: check the size from the header first.
            size = _webp_header_size(data)
            if size is None:
                raise InvalidImage(f"{subject} is a damaged WebP file (its header is unreadable).")
            self._check_pixels(size, subject)
            image: ImageFile = WebPImagePlugin.WebPImageFile(io.BytesIO(data))
        elif kind is _Format.JPEG:
            scans = data.count(b"\xff\xda")
            if scans > MAX_JPEG_SCANS:
                raise InvalidImage(
                    f"{subject} is a JPEG with {scans} scans; the limit is {MAX_JPEG_SCANS}. "
                    "Re-save it as PNG or as a baseline JPEG."
                )
            image = JpegImagePlugin.JpegImageFile(io.BytesIO(data))
        else:
            return self._open_png(io.BytesIO(data), subject)
        self._check_pixels(image.size, subject)
        return image

    def _check_pixels(self, size: tuple[int, int], subject: str) -> None:
        width, height = size
        if width * height > self._max_pixels:
            raise InvalidImage(
                f"{subject} is {width}x{height} pixels ({width * height / 1e6:.1f} megapixels); "
                f"the limit is {self._max_pixels / 1e6:g} megapixels. Images this large are "
                "refused to protect the server (it may be a decompression bomb); use a "
                "smaller image."
            )

    def _encode_png(self, image: Image.Image) -> bytes:
        options: dict[str, Any] = {"compress_level": self._png_compress_level}
        if image.mode not in _PNG_MODES:
            # e.g. CMYK JPEG: PNG has no such mode, and its ICC profile no longer applies.
            image = image.convert("RGBA" if image.has_transparency_data else "RGB")
            options["icc_profile"] = None
        return encoded(image, "PNG", **options)

    def _encode_preview(self, image: Image.Image) -> EncodedImage:
        """JPEG at the configured quality; lower quality, then size, if over the byte budget.

        Photos fit at the first try; only noise-like content takes the slower path.
        """
        qualities = [self._preview_quality] + [q for q in (65, 50, 35) if q < self._preview_quality]
        data = b""
        for _ in range(4):
            for quality in qualities:
                # optimize: Huffman tables fitted to the image, about 20 % fewer bytes.
                data = encoded(image, "JPEG", quality=quality, optimize=True)
                if len(data) <= self._max_preview_bytes:
                    return EncodedImage(data=data, mime_type=_Format.JPEG.value)
            width, height = image.size
            if max(width, height) <= 16:
                break
            image = image.resize((max(1, width * 3 // 4), max(1, height * 3 // 4)), _RESAMPLE)
        return EncodedImage(data=data, mime_type=_Format.JPEG.value)

    def _encode_thumbnail(self, image: Image.Image) -> EncodedImage:
        # method=0 is libwebp's fastest effort: about 5x quicker than the default for a
        # thumbnail a few kilobytes larger, which the gallery caches anyway.
        data = encoded(image, "WEBP", quality=self._thumbnail_quality, method=0)
        return EncodedImage(data=data, mime_type=_Format.WEBP.value)


class _Attempt:
    """One early decode: the arriving file, its thread, and what the thread decoded."""

    def __init__(self, head: bytes) -> None:
        self.file = ArrivingFile()
        self.file.append(head)
        self.decoded: Image.Image | None = None
        self.preview: Image.Image | None = None  # shrunk while decoding
        self.thread: threading.Thread | None = None


class _EarlyPngProcessing:
    """One generated image: a PNG is decoded by its own thread while its bytes arrive.

    The thread starts at the first bytes when they are a PNG's and an early-decode slot
    is free at once; otherwise nothing happens until ``finish``, which then does what
    ``process`` does. Early decodes have slots of their own, so a slow download never
    holds up the decoding other work needs. Work done early is used only when the bytes
    that arrived are exactly the image handed to ``finish``; ``start_over`` drops it
    (the backend found that what it sent was not the image after all).
    """

    def __init__(self, codec: PillowImageCodec, preview_max_side: int, thumbnail_max_side: int):
        self._codec = codec
        self._sides = (preview_max_side, thumbnail_max_side)
        self._lock = threading.Lock()  # write, start_over and close may come from two threads
        self._head = b""
        self._attempt: _Attempt | None = None
        self._given_up = False
        self._closed = False

    def write(self, chunk: bytes) -> None:
        with self._lock:
            if self._attempt is not None:
                self._attempt.file.append(chunk)
            elif not self._given_up:
                self._head += chunk
                if len(self._head) >= len(_PNG_SIGNATURE):
                    self._start()

    def start_over(self) -> None:
        with self._lock:
            attempt = self._attempt
            self._drop()
            self._head = b""
            self._given_up = self._closed
        if attempt is not None and attempt.thread is not None:
            attempt.thread.join()  # ends at its next read; then its slot is free again

    def finish(self, data: bytes) -> ProcessedImage:
        with self._lock:
            attempt, self._attempt, self._given_up = self._attempt, None, True
        if attempt is None or attempt.thread is None:
            return self._codec.process(data, *self._sides)
        attempt.file.end()
        attempt.thread.join()
        decoded = attempt.decoded
        if decoded is None or not attempt.file.holds(data):
            attempt.file.drop()
            return self._codec.process(data, *self._sides)  # says what is wrong, if anything
        attempt.file.drop()
        with self._codec.decode_slot():
            # The checks run beside the preview, which is wasted if they fail.
            intact = _beside(lambda: self._intact(data, decoded, attempt.preview is not None))
            preview, thumbnail = self._codec._derive(decoded, *self._sides, attempt.preview)
            png = intact.result()
        if png is None:
            return self._codec.process(data, *self._sides)
        return ProcessedImage(png, decoded.width, decoded.height, preview, thumbnail)

    def _intact(self, data: bytes, decoded: Image.Image, streamed: bool) -> bytes | None:
        """The PNG to store once its chunks are checked; ``None`` if Pillow reads it otherwise.

        A PNG decoded as it streamed in (``png_stream``) had only its pixel data read:
        Pillow's header parse then checks every other chunk as a whole decode would (a
        colour profile, text, an unknown chunk), and says what the image is.
        """
        png = data[: _verify_png_chunks(data, _GENERATED)]
        if streamed:
            with _decoding(_GENERATED, _Format.PNG):
                header = self._codec._open_png(io.BytesIO(png), _GENERATED)
                if (header.mode, header.size) != (decoded.mode, decoded.size):
                    return None
                _read_chunks_after_the_data(header, png)
            if "transparency" in header.info:  # given after the data: Pillow applies it
                return None
        return png

    def close(self) -> None:
        with self._lock:
            self._closed = self._given_up = True
            self._drop()

    def _start(self) -> None:
        """The head is in: start decoding early if it is a PNG and a slot is free."""
        head, self._head = self._head, b""
        if not head.startswith(_PNG_SIGNATURE) or not self._codec.early_slot_free():
            self._given_up = True
            return
        attempt = _Attempt(head)
        attempt.thread = threading.Thread(
            target=self._decode, args=(attempt,), name="png-early-decode", daemon=True
        )
        try:
            attempt.thread.start()
        except RuntimeError:  # no thread to be had: decode at ``finish`` instead
            self._codec.release_early_slot()
            self._given_up = True
            return
        self._attempt = attempt

    def _drop(self) -> None:
        """Let the current early decode go (its thread ends at its next read)."""
        if self._attempt is not None:
            self._attempt.file.drop()
            self._attempt = None

    def _decode(self, attempt: _Attempt) -> None:
        try:
            with _decoding(_GENERATED, _Format.PNG):
                if not self._decode_plain(attempt):
                    attempt.file.seek(0)
                    # A raw binary file, which is all Pillow reads through.
                    joined = cast("IO[bytes]", JoinedImageData(attempt.file))
                    image = self._codec._open_png(joined, _GENERATED)
                    image.decodermaxblock = _EARLY_READ
                    image.load()
                    attempt.decoded = _displayable(image)
        except InvalidImage:
            attempt.file.drop()  # ``finish`` decodes again from the whole image and says why
        except Exception:
            attempt.file.drop()
            _log.exception("the early decode of a generated image failed; decoding it again")
        finally:
            self._codec.release_early_slot()

    def _decode_plain(self, attempt: _Attempt) -> bool:
        """Decode and shrink a plain PNG on several cores; ``False`` if it is not plain."""
        decoded = png_stream.decode(
            attempt.file,
            lambda size: self._codec._check_pixels(size, _GENERATED),
            lambda size: [_preview_size(size, self._sides[0])],
        )
        if decoded is None:
            return False
        attempt.decoded, (attempt.preview,) = decoded.image, decoded.shrunk
        return True


class _Beside(Generic[T]):
    """``call`` running in a short-lived thread of its own; ``result`` waits for it."""

    def __init__(self, call: Callable[[], T]) -> None:
        self._call = call
        self._value: T | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="codec-beside", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self._value = self._call()
        except BaseException as exc:  # handed to the thread that asks for the result
            self._error = exc

    def result(self) -> T:
        self._thread.join()
        if self._error is not None:
            raise self._error
        return cast("T", self._value)


def _beside(call: Callable[[], T]) -> _Beside[T]:
    """Run ``call`` beside the current thread (Pillow lets go of the GIL while it works)."""
    return _Beside(call)


@contextmanager
def _decoding(subject: str, kind: _Format) -> Iterator[None]:
    """Turn whatever Pillow raises for bad data into an ``InvalidImage``."""
    try:
        yield
    except InvalidImage:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        # Pillow's own global limit, only reachable when ``max_pixels`` is set above it.
        raise InvalidImage(
            f"{subject} has too many pixels to decode safely (it may be a decompression "
            "bomb); use a smaller image."
        ) from exc
    except _DECODE_ERRORS as exc:
        reason = " ".join(str(exc).split())[:160] or type(exc).__name__
        raise InvalidImage(
            f"{subject} is a damaged or truncated {kind.label} file and cannot be decoded "
            f"({reason}). {_remedy(subject)}"
        ) from exc


def _identify(data: bytes, subject: str) -> _Format:
    """The real format, from magic bytes; a helpful refusal for everything else."""
    if not data:
        raise InvalidImage(f"{subject} is empty (0 bytes).")
    if data.startswith(_PNG_SIGNATURE):
        return _Format.PNG
    if data.startswith(b"\xff\xd8\xff"):
        return _Format.JPEG
    if data.startswith(b"RIFF") and data[8:12] == b"WEBP":
        return _Format.WEBP
    advice = " Export it from your photo app as JPEG." if subject == _UPLOADED else ""
    raise InvalidImage(
        f"{subject} is not a PNG, JPEG or WebP image ({_describe(data)}); "
        f"only those formats are supported.{advice}"
    )


def _remedy(subject: str) -> str:
    """What to do about a damaged file: a photo is exported again, never regenerated."""
    if subject == _UPLOADED:
        return "Export it again from your photo app as JPEG or PNG."
    return "Re-export or regenerate it."


def _describe(data: bytes) -> str:
    """A guess at what unsupported bytes are, to make the refusal actionable."""
    head = data[:32]
    brand = head[8:12]
    known = (
        (head.startswith((b"GIF87a", b"GIF89a")), "a GIF image"),
        (head.startswith(b"BM") and head[6:10] == b"\0\0\0\0", "a BMP image"),
        (head.startswith((b"II*\0", b"MM\0*")), "a TIFF image"),
        (head[4:8] == b"ftyp" and brand in (b"avif", b"avis"), "an AVIF image"),
        (head[4:8] == b"ftyp" and brand in (b"heic", b"heix", b"mif1", b"msf1"), "a HEIC image"),
        (head.startswith(b"%PDF"), "a PDF document"),
        (b"<svg" in data[:512].lower(), "an SVG drawing"),
        (head.startswith((b"\x89PNG", b"\xff\xd8")), "a damaged image header"),
    )
    for matches, what in known:
        if matches:
            return f"it looks like {what}"
    try:
        text = data[:256].decode("utf-8")
    except UnicodeDecodeError:
        return "the data is not a recognised image format"
    if text.strip() and all(ch.isprintable() or ch.isspace() for ch in text):
        return "it looks like text"
    return "the data is not a recognised image format"


def _verify_png_chunks(data: bytes, subject: str) -> int:
    """Check every chunk's length and CRC up to ``IEND``; return the offset just past it.

    Pillow's decoder skips the CRCs of image data and tolerates a missing ``IEND``;
    browsers do not, and we store valid PNGs byte for byte. ISA-L's CRC is the same
    sum at about seven times zlib's speed (1.2 against 8 ms for a 20 MB 4K PNG).
    """
    view = memoryview(data)
    size = len(data)
    pos = len(_PNG_SIGNATURE)
    first = True
    while True:
        if pos + 12 > size:
            raise InvalidImage(
                f"{subject} is a truncated PNG file (it ends before the IEND chunk). "
                f"{_remedy(subject)}"
            )
        length = int.from_bytes(view[pos : pos + 4], "big")
        chunk_type = bytes(view[pos + 4 : pos + 8])
        name = chunk_type.decode("ascii", "replace")
        end = pos + 12 + length
        if first and chunk_type != b"IHDR":
            raise InvalidImage(f"{subject} is a damaged PNG file (it does not start with IHDR).")
        first = False
        if length > 0x7FFFFFFF or end > size:
            raise InvalidImage(
                f"{subject} is a truncated PNG file (chunk {name!r} runs past the end). "
                f"{_remedy(subject)}"
            )
        expected = int.from_bytes(view[end - 4 : end], "big")
        if isal_zlib.crc32(view[pos + 4 : end - 4]) != expected:
            raise InvalidImage(
                f"{subject} is a damaged PNG file (checksum mismatch in chunk {name!r}). "
                f"{_remedy(subject)}"
            )
        pos = end
        if chunk_type == b"IEND":
            return pos


def _read_chunks_after_the_data(header: ImageFile, png: bytes) -> None:
    """Hand the chunks after the image data to Pillow's chunk readers, as the end of its
    decode does (``PngImageFile.load_end``): what it would refuse is refused here too.

    ``png`` has been checked chunk by chunk (``_verify_png_chunks``).
    """
    stream: PngImagePlugin.PngStream | None = getattr(header, "png", None)
    if stream is None:
        return
    view = memoryview(png)
    pos, after_data = len(_PNG_SIGNATURE), None
    while pos < len(png):  # the end of the first run of data chunks, where Pillow's
        length = int.from_bytes(view[pos : pos + 4], "big")  # decode (and ours) stops
        is_data = bytes(view[pos + 4 : pos + 8]) == b"IDAT"
        if after_data is not None and not is_data:
            break
        pos += 12 + length
        if is_data:
            after_data = pos
    if after_data is None or header.fp is None:
        return
    header.fp.seek(after_data)
    while True:
        try:
            kind, start, length = stream.read()
        except (struct.error, SyntaxError):
            return  # an unreadable chunk name ends Pillow's reading without a refusal
        if kind == b"IEND":
            return
        try:
            stream.call(kind, start, length)
        except UnicodeDecodeError:
            return  # Pillow stops reading here too
        except (EOFError, AttributeError):  # a chunk Pillow skips
            header.fp.seek(start + length)
        header.fp.read(4)  # its checksum, already checked


def _webp_header_size(data: bytes) -> tuple[int, int] | None:
    """Canvas size from the first WebP chunk (VP8, VP8L or VP8X), without decoding."""
    chunk = data[12:16]
    if chunk == b"VP8 " and len(data) >= 30 and data[23:26] == b"\x9d\x01\x2a":
        width = int.from_bytes(data[26:28], "little") & 0x3FFF
        height = int.from_bytes(data[28:30], "little") & 0x3FFF
        return width, height
    if chunk == b"VP8L" and len(data) >= 25 and data[20] == 0x2F:
        bits = int.from_bytes(data[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8X" and len(data) >= 30:
        width = int.from_bytes(data[24:27], "little") + 1
        height = int.from_bytes(data[27:30], "little") + 1
        return width, height
    return None


def _displayable(image: Image.Image) -> Image.Image:
    """The image in a mode that resizes correctly: RGB, RGBA, L or LA.

    Palette and 1-bit images would otherwise be resized with nearest-neighbour, and
    16-bit grey would clip to white.
    """
    if image.mode in ("RGBA", "LA"):
        return image
    if image.has_transparency_data:
        return image.convert("RGBA")
    if image.mode in ("RGB", "L"):
        return image
    if image.mode in _SIXTEEN_BIT_GREY:
        return image.convert("I").point(lambda value: value / 257, "L")
    return image.convert("RGB")


def _fit(image: Image.Image, max_side: int) -> Image.Image:
    """Area-averaged, in the bands a decode in progress uses too (the same bytes)."""
    return shrink(image, max_side)


def _thumbnail_of(display: Image.Image, preview: Image.Image, max_side: int) -> Image.Image:
    """The thumbnail, from the preview when that is at least as large, else from the image.

    Its size is the image's own fit either way, as a thumbnail remade later has.
    """
    target = fit_size(display.size, max_side)
    source = preview if preview.width >= target[0] and preview.height >= target[1] else display
    return shrink_to(source, target)


def _preview_size(size: tuple[int, int], max_side: int) -> tuple[int, int]:
    """The preview's size for an image of ``size``."""
    return fit_size(size, _preview_side(size, max_side))


def _preview_side(size: tuple[int, int], max_side: int) -> int:
    """Strictly smaller than the image itself: at 1K the preview is not the image again."""
    return min(max_side, max(1, max(size) * 3 // 4))


def _flatten(image: Image.Image) -> Image.Image:
    """RGB with any transparency composited onto white (JPEG has no alpha)."""
    if image.mode == "RGB":
        return image
    if image.mode in ("RGBA", "LA"):
        rgba = image.convert("RGBA")
        background = Image.new("RGB", image.size, _WHITE)
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    return image.convert("RGB")


def _check_side(name: str, value: int) -> None:
    if value < 1:
        raise ValueError(f"{name} must be positive, not {value}")


def _human_bytes(count: int) -> str:
    """``7.0 MiB``, ``12.5 KiB`` or ``900 bytes``."""
    if count >= 1024 * 1024:
        return f"{count / (1024 * 1024):.1f} MiB"
    if count >= 1024:
        return f"{count / 1024:.1f} KiB"
    return f"{count} bytes"


__all__ = [
    "DEFAULT_MAX_PIXELS",
    "DEFAULT_MAX_PREVIEW_BYTES",
    "MAX_JPEG_SCANS",
    "PillowImageCodec",
]
