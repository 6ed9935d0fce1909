"""The allocator tuning ``serve`` applies: freed image-sized blocks leave the process.

Each case runs in a fresh interpreter (the setting is process-wide and cannot be
undone). The untuned case shows what the tuning is for: glibc keeps the blocks.
"""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest

PROBE = """
import ctypes, sys
from image_server.process_tuning import return_large_blocks_to_the_system

def resident_mb():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS"):
            return int(line.split()[1]) / 1024

def filled(size):
    block = bytearray(size)
    ctypes.memset((ctypes.c_char * size).from_buffer(block), 1, size)
    return block

if sys.argv[1] == "tuned":
    assert return_large_blocks_to_the_system()
MB = 1024 * 1024
del_first = filled(16 * MB)  # one 16 MB block freed: glibc raises its mmap threshold
del del_first
resting = resident_mb()
blocks, pins = [], []
for _ in range(8):  # then eight more, each pinned in place by a small allocation after it
    blocks.append(filled(16 * MB))
    pins.append(bytearray(4096))
del blocks
print(round(resident_mb() - resting))
"""


def kept_after_free(mode: str) -> int:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, mode],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return int(done.stdout.strip())


pytestmark = pytest.mark.skipif(
    platform.libc_ver()[0] != "glibc", reason="the tuning is for glibc only"
)


def test_tuned_freed_image_blocks_go_back_to_the_system() -> None:
    """128 MB of 16 MB blocks freed: at most a few MB stay resident."""
    assert kept_after_free("tuned") < 16


def test_untuned_glibc_keeps_them_which_is_what_the_tuning_is_for() -> None:
    """Without it the same 128 MB stay resident (the probe can tell the two apart)."""
    assert kept_after_free("plain") > 64
