"""The C allocator's arenas and trims (glibc): memory stays flat after large answers."""

from __future__ import annotations

import platform

import pytest

from exporter.memory import TRIM_AFTER_BYTES, TRIM_MIN_INTERVAL, Allocator
from tests.test_poller import FakeClock

glibc = pytest.mark.skipif(
    platform.libc_ver()[0] != "glibc", reason="the allocator is tuned on glibc only"
)


@glibc
def test_small_answers_do_not_trim() -> None:
    allocator = Allocator({}, clock=FakeClock())
    allocator.received(TRIM_AFTER_BYTES - 1)
    assert allocator.trims == 0


@glibc
def test_enough_answer_bytes_trim_once() -> None:
    allocator = Allocator({}, clock=FakeClock())
    allocator.received(TRIM_AFTER_BYTES // 2)
    allocator.received(TRIM_AFTER_BYTES // 2)
    assert allocator.trims == 1


@glibc
def test_trims_are_rate_limited() -> None:
    clock = FakeClock()
    allocator = Allocator({}, clock=clock)
    allocator.received(TRIM_AFTER_BYTES)
    allocator.received(TRIM_AFTER_BYTES)
    assert allocator.trims == 1
    clock.advance(TRIM_MIN_INTERVAL)
    allocator.received(TRIM_AFTER_BYTES)
    assert allocator.trims == 2


@glibc
def test_the_allocator_is_active_on_glibc() -> None:
    allocator = Allocator({})
    assert allocator.active
    allocator.configure()  # bounded arenas and a fixed mmap threshold; must not raise
