"""Freed memory is kept for reuse in CLI and batch processes: the setting takes, once, and only on glibc."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="the allocator setting is for glibc only")
def test_reading_twice_faults_no_new_pages_once_memory_is_reused():
    """In a fresh process: 64 MB decompressed (as reading a segmentation does), freed and decompressed again,
    comes back without new page faults; without the setting it faults in all of its 16 384 pages again."""
    script = (
        "import resource, sys, zlib\n"
        "from TTVPrognosisLib.allocator import reuse_freed_memory\n"
        "assert sys.argv[1] == 'default' or (reuse_freed_memory() and reuse_freed_memory())\n"
        "packed = zlib.compress(bytes(64 << 20))\n"
        "zlib.decompress(packed)\n"
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt\n"
        "zlib.decompress(packed)\n"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)\n")

    def faults(setting: str) -> int:
        run = subprocess.run([sys.executable, "-c", script, setting], check=True, capture_output=True, text=True)
        return int(run.stdout)

    assert faults("default") > 10_000
    assert faults("reuse") < 1_000
