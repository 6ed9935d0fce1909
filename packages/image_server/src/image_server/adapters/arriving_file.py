"""A read-only file whose bytes are still arriving: reads wait until they are there.

It lets a decoder that reads files (Pillow) work on an image during its download: the
downloading thread appends, the decoding thread reads, and a read past what has arrived
blocks until more comes or the file is ended.
"""

from __future__ import annotations

import bisect
import io
import threading
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer


class _ReadableFile(io.RawIOBase):
    """What both files here share: readable, seekable, ``readinto`` through ``read``."""

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer) -> int:
        view = memoryview(buffer).cast("B")
        data = self.read(len(view))
        view[: len(data)] = data
        return len(data)


class ArrivingFile(_ReadableFile):
    """Bytes appended by one thread, read (forward, or sought in) by another.

    The pieces are kept as they came, never copied into one growing buffer: appending
    costs nothing, whatever the image's size.
    """

    def __init__(self) -> None:
        super().__init__()
        self._pieces: list[bytes] = []
        self._starts: list[int] = []  # where each piece begins in the file
        self._size = 0
        self._pos = 0
        self._ended = False
        self._dropped = False
        self._arrived = threading.Condition()

    def append(self, chunk: bytes) -> None:
        """More bytes; ignored once the file is ended or dropped."""
        if not chunk:
            return
        with self._arrived:
            if self._ended:
                return
            self._pieces.append(chunk)
            self._starts.append(self._size)
            self._size += len(chunk)
            self._arrived.notify_all()

    def end(self) -> None:
        """No more bytes will come: reads return what is left, then nothing."""
        with self._arrived:
            self._ended = True
            self._arrived.notify_all()

    def drop(self) -> None:
        """End the file and let go of its bytes (the reader gave up)."""
        with self._arrived:
            self._ended = self._dropped = True
            self._pieces, self._starts, self._size = [], [], 0
            self._arrived.notify_all()

    def holds(self, data: bytes) -> bool:
        """Whether everything that arrived is exactly ``data``."""
        with self._arrived:
            if self._dropped or self._size != len(data):
                return False
            # startswith at an offset compares in place: no copy of a 20 MB image.
            return all(
                data.startswith(piece, start)
                for start, piece in zip(self._starts, self._pieces, strict=True)
            )

    def read(self, size: int = -1) -> bytes:
        with self._arrived:
            while not self._ended and (size < 0 or self._size - self._pos < size):
                self._arrived.wait()
            end = self._size if size < 0 else min(self._size, self._pos + size)
            data = self._slice(self._pos, end)
            self._pos += len(data)
            return data

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        with self._arrived:
            if whence == io.SEEK_END:
                while not self._ended:
                    self._arrived.wait()
                base = self._size
            else:
                base = self._pos if whence == io.SEEK_CUR else 0
            if base + offset < 0:
                raise OSError("seek before the start of the file")
            self._pos = base + offset
            return self._pos

    def tell(self) -> int:
        return self._pos

    def _slice(self, start: int, end: int) -> bytes:
        """Bytes ``start:end`` of what arrived (the caller holds the lock)."""
        if start >= end:
            return b""
        first = bisect.bisect_right(self._starts, start) - 1
        parts: list[bytes] = []
        index = first
        while index < len(self._pieces) and self._starts[index] < end:
            piece, begins = self._pieces[index], self._starts[index]
            lo, hi = max(0, start - begins), min(len(piece), end - begins)
            parts.append(piece if (lo, hi) == (0, len(piece)) else piece[lo:hi])
            index += 1
        return parts[0] if len(parts) == 1 else b"".join(parts)


_PNG_HEAD: Final = 8
_ALL_DATA: Final = 0x7FFFFFFF  # the largest chunk length PNG allows


class JoinedImageData(_ReadableFile):
    """A PNG read as if all its image data were one IDAT chunk.

    A decoder is handed one chunk's data per read; PNG writers use chunks of 8 to 64 KiB,
    so a 4K image means hundreds of reads. Each read is a trip back into Python for the
    decoding thread, and while another thread keeps Python busy (the download), every
    trip waits its turn. Joined, the data goes in reads of ``read_size`` bytes instead.
    The chunks before the image data pass through unchanged; the view ends where the
    image data does, so nothing after it is read. Chunk checksums are not checked here.
    """

    def __init__(self, png: io.RawIOBase) -> None:
        super().__init__()
        self._png = png
        self._pos = 0
        self._left_in_chunk = 0
        self._state = "signature"  # then head, data, end
        self._pending = b""

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        target = offset + (self._pos if whence == io.SEEK_CUR else 0)
        if whence == io.SEEK_END or target != self._pos:
            raise OSError("this view reads forward only")
        return self._pos

    def read(self, size: int = -1) -> bytes:
        wanted = _ALL_DATA if size < 0 else size
        parts: list[bytes] = []
        got = 0
        while got < wanted and self._state != "end":
            piece = self._next(wanted - got)
            parts.append(piece)
            got += len(piece)
        data = b"".join(parts)
        self._pos += len(data)
        return data

    def _next(self, most: int) -> bytes:
        """Up to ``most`` bytes of the joined view."""
        if self._pending:
            piece, self._pending = self._pending[:most], self._pending[most:]
            return piece
        if self._state == "signature":
            self._state = "head"
            signature = self._png.read(_PNG_HEAD)
            if len(signature) < _PNG_HEAD:
                self._state = "end"
            return signature
        if self._state == "head":
            return self._head()
        if self._left_in_chunk == 0:
            self._png.read(4)  # the checksum of the chunk just read
            header = self._png.read(8)
            if len(header) < 8 or header[4:8] != b"IDAT":
                self._state = "end"
                return b""
            self._left_in_chunk = int.from_bytes(header[:4], "big")
            return b""
        piece = self._png.read(min(most, self._left_in_chunk))
        self._left_in_chunk -= len(piece)
        if not piece:
            self._state = "end"
        return piece

    def _head(self) -> bytes:
        """The next chunk before the image data, or the joined header."""
        header = self._png.read(8)
        if len(header) < 8:
            self._state = "end"
            return header
        length = int.from_bytes(header[:4], "big")
        if header[4:8] != b"IDAT":
            self._pending = self._png.read(length + 4)
            return header
        self._state = "data"
        self._left_in_chunk = length
        return _ALL_DATA.to_bytes(4, "big") + b"IDAT"
