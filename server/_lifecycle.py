"""Stopping what the service started: one way, used by every owner of a background task."""

from __future__ import annotations

import asyncio
import logging
from types import TracebackType
from typing import Any

log = logging.getLogger("queuecast")

RECANCEL_AFTER_S = 1.0


async def cancel_and_wait(task: asyncio.Task[Any] | None) -> None:
    """Cancel a task this object owns and wait until it has finished.

    The task's own cancellation is expected and absorbed; the caller's is not (if the caller
    is being cancelled while it waits, that CancelledError propagates). A task still running a
    second after is cancelled again (see below). A task that had
    failed is logged with its traceback rather than lost.
    """
    if task is None:
        return
    task.cancel()
    # Python 3.11's asyncio.wait_for (which libraries such as redis-py use for every send)
    # loses a cancellation that arrives as the awaited operation finishes; the task then runs
    # on as if never cancelled. So ask again until it ends.
    while not (await asyncio.wait([task], timeout=RECANCEL_AFTER_S))[0]:
        task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        current = asyncio.current_task()
        if current is not None and current.cancelling():
            raise
    except Exception:
        log.exception("background task failed", extra={"task": task.get_name()})


class AsyncCloseable:
    """Base for resources used as `async with X(...)`: leaving the block calls `close()`,
    which subclasses make idempotent."""

    async def close(self) -> None:
        raise NotImplementedError

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()
