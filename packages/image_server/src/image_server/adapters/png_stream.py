"""Decoding a plain PNG on two cores while it arrives, shrinking it as its rows come.

Pillow decodes a PNG in one pass on one core: inflate, then undo each row's filter.
For a photo both halves cost about the same (15 ms each at 1K, 0.25 s each at 4K), and
the preview and thumbnail can only start once the last row is in. Here the calling
thread inflates the image data as it arrives, with ISA-L (``isal``: about twice
zlib's speed, and it lets other threads run while it works); a second thread hands the
rows to Pillow's own PNG row decoder, wrapped as uncompressed deflate blocks, so the
filters are undone exactly as Pillow always does; a third shrinks the rows that are
final into the preview and thumbnail (``BandShrink``). When the last byte is in, little
is left to do.

Only the plain case takes this path: 8-bit RGB or grey, not interlaced, no palette,
transparency or animation chunk, and chunk types that are letters, which is what image
models send. ``decode`` returns ``None`` for anything else, and the caller decodes that
with Pillow as before. Bad pixel data raises ``InvalidImage``; the chunk checksums, and
what the other chunks say, are not checked here (the caller has Pillow read them).
"""

from __future__ import annotations

import queue
import struct
import threading
from collections.abc import Callable, Sequence
from typing import Final, NamedTuple, Protocol, cast

from isal import isal_zlib
from PIL import Image

from image_core.errors import InvalidImage
from image_server.adapters.strip_shrink import BandShrink

_SIGNATURE: Final = b"\x89PNG\r\n\x1a\n"
_COLOUR_TYPES: Final = {0: "L", 2: "RGB"}
_NOT_PLAIN: Final = frozenset({b"PLTE", b"tRNS", b"acTL", b"fcTL"})
"""Chunks that change what the pixels are (a palette, transparency, animation frames)."""
_READ: Final = 1 << 17
"""Compressed bytes inflated at a time: small pieces keep the two threads in step."""
_INFLATED: Final = 1 << 18
"""Most bytes one inflate step may produce: a hostile stream cannot balloon in memory."""
_IN_FLIGHT: Final = 16
"""Pieces waiting for the row decoder at most (4 MiB), however far behind it falls."""
_STORED_BLOCK: Final = 0xFFFF
_ZLIB_HEAD: Final = b"\x78\x01"
_INFLATE_ERROR: Final = cast("type[Exception]", isal_zlib.error)  # typed loosely upstream
_ROW_DECODER: Final = "png-early-rows"
_SHRINKER: Final = "png-early-shrink"


class Source(Protocol):
    """Where the PNG is read from: reads wait for bytes (``ArrivingFile``), seeks go back."""

    def read(self, size: int = -1, /) -> bytes: ...

    def seek(self, offset: int, whence: int = 0, /) -> int: ...


class Header(NamedTuple):
    """What a plain PNG's header says."""

    width: int
    height: int
    mode: str


class Decoded(NamedTuple):
    """The decoded image and the images shrunk from it, in the order asked."""

    image: Image.Image
    shrunk: tuple[Image.Image, ...]


def decode(
    file: Source,
    check_size: Callable[[tuple[int, int]], None],
    targets: Callable[[tuple[int, int]], Sequence[tuple[int, int]]],
) -> Decoded | None:
    """Decode the PNG ``file`` holds (reads wait for bytes), or ``None`` if it is not plain.

    ``check_size`` may refuse the size before anything is decoded; ``targets`` gives,
    for the size, the sizes to shrink to while decoding. With ``None`` the file has been
    read partway: the caller seeks back to the start.
    """
    header = _plain_header(file)
    if header is None:
        return None
    size = (header.width, header.height)
    check_size(size)
    image = Image.new(header.mode, size, None)  # every row is written before it is read
    shrinks = [BandShrink(image, target) for target in targets(size)]
    try:
        rows = _RowDecoder(image, shrinks)
    except RuntimeError:  # no thread to be had: Pillow decodes it in the caller's thread
        return None
    try:
        _inflate_into(file, rows, header)
    finally:
        rows.close()  # the row thread ends whatever happened here
    rows.wait()
    return Decoded(image, tuple(s.result() for s in shrinks))


def _plain_header(file: Source) -> Header | None:
    """Read up to the first image data chunk; ``None`` unless the PNG is a plain one."""
    if file.read(len(_SIGNATURE)) != _SIGNATURE:
        return None
    header: Header | None = None
    while True:
        head = file.read(8)
        if len(head) < 8:
            return None
        length, kind = int.from_bytes(head[:4], "big"), head[4:]
        if kind == b"IDAT":
            file.seek(-8, 1)  # the inflating starts at this chunk
            return header
        body = file.read(length + 4)  # and its checksum
        if len(body) < length + 4 or kind in _NOT_PLAIN or not kind.isalpha():
            return None
        if kind == b"IHDR":
            if header is not None or length != 13:
                return None
            header = _read_ihdr(body[:13])
            if header is None:
                return None
        elif header is None:
            return None  # IHDR must come first


def _read_ihdr(body: bytes) -> Header | None:
    width, height, depth, colour, compression, filtering, interlace = struct.unpack(
        ">IIBBBBB", body
    )
    mode = _COLOUR_TYPES.get(colour)
    if mode is None or depth != 8 or (compression, filtering, interlace) != (0, 0, 0):
        return None
    if not (0 < width < 1 << 31 and 0 < height < 1 << 31):
        return None
    return Header(width, height, mode)


def _inflate_into(file: Source, rows: _RowDecoder, header: Header) -> None:
    """Inflate every image data chunk in turn, handing the bytes to ``rows``."""
    channels = 1 if header.mode == "L" else 3
    expected = header.height * (header.width * channels + 1)
    inflater = isal_zlib.decompressobj()
    produced = 0
    while True:
        head = file.read(8)
        if len(head) < 8 or head[4:] != b"IDAT":
            break
        left = int.from_bytes(head[:4], "big")
        while left:
            piece = file.read(min(left, _READ))
            if not piece:
                raise InvalidImage("The generated image ends in the middle of its data.")
            left -= len(piece)
            produced = _inflate(inflater, piece, rows, produced, expected)
        file.read(4)  # the chunk's checksum, checked by the caller
    produced = _inflate(inflater, b"", rows, produced, expected)  # what it still holds
    if produced != expected or not inflater.eof:
        raise InvalidImage("The generated image's pixel data is incomplete.")


def _inflate(
    inflater: isal_zlib.Decompress, piece: bytes, rows: _RowDecoder, produced: int, expected: int
) -> int:
    """Inflate ``piece``, then go on while the inflater may still hold output back.

    An output step is capped, so the inflater can take in all of its input and keep
    output for a later call: it is asked again until a step comes out short.
    """
    data = piece
    while not inflater.eof:
        try:
            out = inflater.decompress(data, _INFLATED)
        except _INFLATE_ERROR as exc:
            raise InvalidImage("The generated image's pixel data is damaged.") from exc
        produced += len(out)
        if produced > expected:
            raise InvalidImage("The generated image holds more pixel data than its size.")
        if out:
            rows.put(out)
        data = inflater.unconsumed_tail
        if not data and len(out) < _INFLATED:
            break
    return produced  # bytes after the stream's end are ignored, as Pillow does


class _RowDecoder:
    """Two threads: one undoes the row filters with Pillow, one shrinks the final rows.

    Constructing it raises ``RuntimeError`` when a thread cannot be started (none is left).

    Shrinking costs about half as much as undoing the filters; in a thread of its own it
    follows the row decoder a band behind, and the three stages (inflate, rows, shrink)
    share the cores as the machine schedules them.
    """

    def __init__(self, image: Image.Image, shrinks: list[BandShrink]) -> None:
        self._image = image
        self._shrinks = shrinks
        self._stride = image.width * len(image.getbands()) + 1
        self._pieces: queue.Queue[bytes | None] = queue.Queue(_IN_FLIGHT)
        self._error: BaseException | None = None
        self._progress = threading.Condition()
        self._rows_final = 0
        self._rows_over = False  # the row decoder has ended
        self._decoder = Image._getdecoder(image.mode, "zip", image.mode)
        self._decoder.setimage(image.im, (0, 0, *image.size))
        self._threads: list[threading.Thread] = []
        for target, name in ((self._undo_filters, _ROW_DECODER), (self._shrink, _SHRINKER)):
            thread = threading.Thread(target=target, name=name, daemon=True)
            try:
                thread.start()
            except RuntimeError:
                self.close()  # ends the one that started
                raise
            self._threads.append(thread)

    def put(self, raw: bytes) -> None:
        if self._error is not None:
            raise InvalidImage("The generated image's pixel data is damaged.") from self._error
        self._pieces.put(raw)

    def close(self) -> None:
        """No more pieces: wait until both threads have done their part and ended."""
        self._pieces.put(None)
        for thread in self._threads:
            thread.join()

    def wait(self) -> None:
        """Raise what went wrong in the threads, if anything did."""
        if self._error is not None:
            raise InvalidImage("The generated image's pixel data is damaged.") from self._error

    def _undo_filters(self) -> None:
        fed = 0
        try:
            try:
                self._decoder.decode(_ZLIB_HEAD)
            except Exception as exc:  # the pieces are still taken, or the inflating blocks
                self._error = exc
            while (raw := self._pieces.get()) is not None:
                if self._error is not None:
                    continue  # keep taking pieces, so the inflating thread never blocks
                try:
                    self._decode(raw)
                except Exception as exc:  # handed to the inflating thread
                    self._error = exc
                    continue
                fed += len(raw)
                with self._progress:
                    self._rows_final = fed // self._stride
                    self._progress.notify()
        finally:
            with self._progress:
                self._rows_over = True
                self._progress.notify()

    def _shrink(self) -> None:
        done = 0
        while True:
            with self._progress:
                while self._rows_final == done and not self._rows_over:
                    self._progress.wait()
                rows, over = self._rows_final, self._rows_over
            if self._error is not None or (over and rows < self._image.height):
                return  # damaged or incomplete: nothing to finish
            try:
                for shrink in self._shrinks:
                    shrink.advance(rows)
            except Exception as exc:
                self._error = exc
                return
            done = rows
            if over:
                return

    def _decode(self, raw: bytes) -> None:
        """Hand ``raw`` to Pillow as stored (uncompressed) deflate blocks, without a copy.

        Each block's five-byte header and its bytes go in as two calls: the decoder
        inflates a stream, so where its input is cut does not matter.
        """
        view = memoryview(raw)
        for start in range(0, len(raw), _STORED_BLOCK):
            size = min(_STORED_BLOCK, len(raw) - start)
            for part in (struct.pack("<BHH", 0, size, size ^ 0xFFFF), view[start : start + size]):
                _consumed, error = self._decoder.decode(part)
                if error < 0:
                    raise ValueError(f"Pillow's row decoder failed ({error})")
