"""cancel_and_wait: a task that lost its cancellation (Python 3.11's wait_for can swallow one)
is cancelled again until it ends; the caller's own cancellation still propagates."""

from __future__ import annotations

import asyncio

import pytest

from server import _lifecycle
from server._lifecycle import cancel_and_wait


async def test_a_swallowed_cancellation_is_asked_again(monkeypatch) -> None:
    monkeypatch.setattr(_lifecycle, "RECANCEL_AFTER_S", 0.05)
    swallowed = 0

    async def deaf_once() -> None:
        nonlocal swallowed
        while True:
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                if swallowed:
                    raise
                swallowed += 1  # what a 3.11 wait_for does to a cancel arriving as it ends
                asyncio.current_task().uncancel()

    task = asyncio.create_task(deaf_once())
    await asyncio.sleep(0)
    async with asyncio.timeout(5):
        await cancel_and_wait(task)
    assert task.cancelled() and swallowed == 1


async def test_the_callers_cancellation_propagates() -> None:
    stubborn = asyncio.create_task(asyncio.sleep(3600))

    async def closer() -> None:
        await cancel_and_wait(stubborn)

    outer = asyncio.create_task(closer())
    await asyncio.sleep(0)
    outer.cancel()
    with pytest.raises(asyncio.CancelledError):
        await outer
    await cancel_and_wait(stubborn)


async def test_a_failed_task_is_logged_not_raised(caplog) -> None:
    async def fails() -> None:
        raise RuntimeError("boom")

    task = asyncio.create_task(fails())
    await asyncio.sleep(0)
    await cancel_and_wait(task)
    assert "background task failed" in caplog.text
