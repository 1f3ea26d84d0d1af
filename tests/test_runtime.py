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
    import mmap

    # 64 MB mapped afresh and touched page by page: fresh pages whatever the allocator holds (after the
    # steady allocator, a numpy block of this size can come from heap pages faulted in by earlier tests)
    block = mmap.mmap(-1, 64 << 20)
    before = runtime.minor_page_faults()
    for offset in range(0, len(block), mmap.PAGESIZE):
        block[offset] = 1
    assert runtime.minor_page_faults() - before >= 32  # 2 MB pages where the kernel backs it with huge pages
    block.close()
