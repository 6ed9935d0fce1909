"""Encoding through an in-memory file: the same bytes as ``BytesIO``, with the GIL free."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from image_server.adapters import encoded_bytes
from image_server.adapters.encoded_bytes import encoded
from tests.support.photos import draw_photo

ROOT = Path(__file__).resolve().parents[2]
linux_only = pytest.mark.skipif(
    not hasattr(os, "memfd_create"), reason="anonymous memory files are Linux's"
)

FORMATS: list[tuple[str, str, dict[str, Any]]] = [
    ("JPEG", "RGB", {"quality": 80, "optimize": True}),  # the preview
    ("JPEG", "RGB", {"quality": 90, "progressive": True}),
    ("JPEG", "L", {"quality": 85}),  # a grey reference
    ("PNG", "RGB", {"compress_level": 1}),  # through BytesIO
    ("WEBP", "RGB", {"quality": 70, "method": 0}),  # through BytesIO
]


@pytest.fixture(scope="module")
def photo() -> Image.Image:
    return draw_photo(1024, 768, seed=5)


def through_bytes_io(image: Image.Image, format_name: str, **options: Any) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format_name, **options)
    return buffer.getvalue()


@pytest.mark.parametrize(("format_name", "mode", "options"), FORMATS)
def test_the_bytes_are_the_ones_bytes_io_gets(
    photo: Image.Image, format_name: str, mode: str, options: dict[str, Any]
) -> None:
    image = photo.convert(mode)
    data = encoded(image, format_name, **options)
    assert data == through_bytes_io(image, format_name, **options)
    with Image.open(io.BytesIO(data)) as back:
        assert back.format == format_name
        assert back.size == photo.size


def test_without_a_memory_file_it_still_encodes(
    photo: Image.Image, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refused(name: str, flags: int = 0) -> int:
        raise PermissionError("memfd_create is not allowed here")

    monkeypatch.setattr(os, "memfd_create", refused, raising=False)
    assert encoded(photo, "PNG", compress_level=1) == through_bytes_io(
        photo, "PNG", compress_level=1
    )


def open_descriptors() -> int:
    return len(list(Path("/proc/self/fd").iterdir()))


@linux_only
def test_a_memory_file_that_cannot_be_opened_is_closed_and_bytes_io_used(
    photo: Image.Image, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_file(*args: object, **kwargs: object) -> object:
        raise OSError("no buffer for it")

    small = photo.resize((64, 48))
    before = open_descriptors()
    monkeypatch.setattr(encoded_bytes, "open", no_file, raising=False)
    assert encoded(small, "JPEG", quality=80) == through_bytes_io(small, "JPEG", quality=80)
    assert open_descriptors() == before


@linux_only
def test_a_file_size_limit_does_not_stop_an_encode(tmp_path: Path) -> None:
    """Writes to a memory file count against the process's file-size limit (a unit's
    LimitFSIZE, ``ulimit -f``): past it the encode goes through ``BytesIO``."""
    script = tmp_path / "limited.py"
    script.write_text(
        textwrap.dedent(
            """
            import io, resource, sys
            from image_server.adapters.encoded_bytes import encoded
            from tests.support.photos import draw_photo

            photo = draw_photo(1024, 768, seed=5)
            expected = io.BytesIO()
            photo.save(expected, "JPEG", quality=95)
            resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))
            data = encoded(photo, "JPEG", quality=95)
            sys.stdout.write(str(data == expected.getvalue()) + " " + str(len(data)))
            """
        )
    )
    done = subprocess.run(
        [sys.executable, str(script)],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert done.returncode == 0, done.stderr
    same, size = done.stdout.split()
    assert same == "True"
    assert int(size) > 4096  # larger than the limit: the memory file could not hold it


@linux_only
def test_no_file_descriptor_is_left_open(photo: Image.Image) -> None:
    small = photo.resize((64, 48))
    before = open_descriptors()
    for _ in range(50):
        encoded(small, "JPEG", quality=80)
    with pytest.raises(ValueError, match="quality"):  # a failed encode closes its file too
        encoded(small, "JPEG", quality="very high")
    assert open_descriptors() == before


@pytest.fixture
def long_switch_interval() -> Iterator[None]:
    """Python hands the GIL over only every second: only C code that lets go of it lets
    another thread in during one encode."""
    previous = sys.getswitchinterval()
    sys.setswitchinterval(1.0)
    try:
        yield
    finally:
        sys.setswitchinterval(previous)


def steps_of_another_thread_during(encode: Any) -> int:
    """How far a busy Python thread got while ``encode`` ran in this one."""
    started, stop = threading.Event(), threading.Event()
    counted = [0]

    def busy() -> None:
        started.set()
        while not stop.is_set():
            counted[0] += 1

    thread = threading.Thread(target=busy, daemon=True)
    thread.start()
    started.wait()
    before = counted[0]
    encode()
    during = counted[0] - before
    stop.set()
    thread.join()
    return during


@linux_only
def test_another_thread_runs_while_an_image_is_encoded(long_switch_interval: None) -> None:
    big = draw_photo(2048, 2048, seed=9)  # a JPEG of it takes several milliseconds
    held = steps_of_another_thread_during(lambda: through_bytes_io(big, "JPEG", quality=80))
    freed = steps_of_another_thread_during(lambda: encoded(big, "JPEG", quality=80))
    assert held == 0  # BytesIO: the lock is kept for the whole encode
    assert freed > 0
