"""The lean per-socket wait primitives behave like the asyncio ones where the code uses them."""

from __future__ import annotations

import asyncio

from server._waitable import Flag, MessageQueue


async def test_flag_wakes_every_waiter_and_stays_set() -> None:
    flag = Flag()
    waiters = [asyncio.create_task(flag.wait()) for _ in range(3)]
    await asyncio.sleep(0)
    assert not any(w.done() for w in waiters)
    flag.set()
    await asyncio.gather(*waiters)
    assert flag.is_set()
    await flag.wait()  # set: returns at once
    flag.clear()
    assert not flag.is_set()


async def test_flag_wait_cancelled_leaves_no_waiter() -> None:
    flag = Flag()
    waiter = asyncio.create_task(flag.wait())
    await asyncio.sleep(0)
    waiter.cancel()
    await asyncio.gather(waiter, return_exceptions=True)
    assert flag._waiters is None
    flag.set()  # nothing left to wake


async def test_message_queue_is_fifo_and_waits() -> None:
    queue: MessageQueue[int] = MessageQueue()
    assert queue.empty()
    getter = asyncio.create_task(queue.get())
    await asyncio.sleep(0)
    assert not getter.done()
    queue.put_nowait(1)
    queue.put_nowait(2)
    assert await getter == 1
    assert not queue.empty()
    assert await queue.get() == 2
    assert queue.empty() and queue.qsize() == 0
