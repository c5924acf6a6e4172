"""The lean per-socket wait primitives behave like the asyncio ones where the code uses them."""

from __future__ import annotations

import asyncio

from server.browser._waitable import Flag, MessageQueue


async def test_flag_wakes_every_waiter_and_stays_set() -> None:
    flag = Flag()
    waiters = [asyncio.ensure_future(flag.wait()) for _ in range(3)]
    await asyncio.sleep(0)
    assert not any(w.done() for w in waiters)
    flag.set()
    await asyncio.gather(*waiters)
    assert flag.is_set()
    await flag.wait()  # set: returns at once
    flag.clear()
    assert not flag.is_set()


async def test_flag_wait_cancelled_is_forgotten_by_the_next_wait() -> None:
    flag = Flag()

    async def wait() -> None:
        await flag.wait()

    waiter = asyncio.create_task(wait())
    await asyncio.sleep(0)
    waiter.cancel()
    await asyncio.gather(waiter, return_exceptions=True)
    again = asyncio.create_task(wait())
    await asyncio.sleep(0)
    assert flag._waiters is not None and len(flag._waiters) == 1
    flag.set()
    await again
    assert flag._waiters is None


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
