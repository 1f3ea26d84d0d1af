"""The steady allocator: applied on glibc, skipped on request."""

import platform

import pytest

from argminn_plugin import runtime


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc only")
def test_steady_allocator_applies_on_glibc_and_can_be_switched_off(monkeypatch):
    monkeypatch.setenv("ARGMINN_MALLOC_TUNING", "0")
    assert runtime.steady_allocator() is False
    monkeypatch.delenv("ARGMINN_MALLOC_TUNING")
    assert runtime.steady_allocator() is True


def test_page_fault_counter_counts():
    import numpy as np

    before = runtime.minor_page_faults()
    block = np.ones(64 << 20, dtype=np.uint8)  # 64 MB, above any mmap threshold: fresh pages
    assert runtime.minor_page_faults() - before >= 32  # 2 MB pages where the kernel backs it with huge pages
    del block
