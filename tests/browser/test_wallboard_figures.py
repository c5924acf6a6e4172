"""The wallboard's queue names, Connect's figures, inferred positions and end reasons, in
Chromium: against the emulator and the service (names and figures as Connect has them), and
against a scripted server for what the emulator path cannot produce on demand (an inferred
position, each end reason, stale figures, messages of a type the page does not know)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.websockets import WebSocket, WebSocketDisconnect

from server.http.serving import bind_socket
from tests.browser.conftest import eventually, screenshot, track
from tests.support.emulator import REPO_ROOT
from tests.support.service import mint_test_token

pytestmark = pytest.mark.browser

INSTANCE = "11111111-1111-4111-8111-111111111111"
QUEUE = "22222222-2222-4222-8222-222222222222"
C1, C2, C3 = (f"{i}3333333-3333-4333-8333-333333333333" for i in (1, 2, 3))


def panel(queue: str, selector: str = "") -> str:
    return f"section[data-queue='{queue}'] {selector}".strip()


async def stat(page, queue: str, name: str) -> str:
    return (await page.inner_text(panel(queue, f"[data-stat='{name}']"))).strip()


async def test_wallboard_shows_connect_names_and_figures_of_the_emulator(page, emulator, service):
    sales = emulator.queues["sales"]
    contacts = [await emulator.create_contact("sales") for _ in range(3)]
    token = mint_test_token("queues", queues=[sales])
    await page.set_viewport_size({"width": 1280, "height": 720})
    # No name in the URL: the board learns Connect's.
    await page.goto(f"{service.url}/static/wallboard.html?queues={sales}#token={token}")
    title = page.locator(panel(sales, ".panel-title"))
    await eventually(lambda: _has_text(title, "sales"))
    assert await page.get_by_role("region", name="sales").count() == 1

    # Nobody is tracked, yet Connect counts three callers: the figures say so.
    await eventually(lambda: _equals(stat(page, sales, "waiting"), "3"))
    truth = await emulator.waiting("sales")
    assert len(truth) == 3
    assert await stat(page, sales, "agents") == "0"
    assert await stat(page, sales, "listed") == "0 listed"
    assert "3 waiting" in await stat(page, sales, "empty")
    oldest = await stat(page, sales, "oldest")
    assert oldest != "\u2013" and oldest.count(":") == 1  # a duration, not the en dash

    # Once a contact is tracked it is listed too.
    await track(service, contacts[0]["contactId"])
    await eventually(lambda: _equals(stat(page, sales, "listed"), "1 listed"))
    row = page.locator(panel(sales, f"tbody tr[data-contact='{contacts[0]['contactId']}']"))
    assert await row.get_attribute("data-position") == "1"
    await screenshot(page, "wallboard-figures")

    # It is answered: Connect counts two, and the row says how it left before it goes.
    await emulator.connect(contacts[0])
    await eventually(lambda: _attribute(row, "data-ended", "connected_to_agent"))
    assert (await row.locator(".outcome").inner_text()).strip() == "Answered"
    await eventually(lambda: _equals(stat(page, sales, "waiting"), "2"))


async def _has_text(locator, text: str) -> bool:
    return (await locator.inner_text()).strip() == text


async def _equals(value, expected: str) -> bool:
    return await value == expected


async def _attribute(locator, name: str, expected: str) -> bool:
    return await locator.count() > 0 and await locator.get_attribute(name) == expected


# -- a scripted server: the page's own static files, and a socket the test speaks for --------


@dataclass
class ScriptedServer:
    url: str
    sockets: list[WebSocket] = field(default_factory=list)
    subscribed: asyncio.Event = field(default_factory=asyncio.Event)
    queue_body: dict[str, Any] = field(default_factory=lambda: {"contacts": []})

    async def send(self, *messages: dict[str, Any] | str) -> None:
        for socket in list(self.sockets):
            for message in messages:
                await socket.send_text(message if isinstance(message, str) else json.dumps(message))


@contextlib.asynccontextmanager
async def scripted_server() -> AsyncIterator[ScriptedServer]:
    sock = bind_socket("127.0.0.1", 0)
    server_state = ScriptedServer(f"http://127.0.0.1:{sock.getsockname()[1]}")

    async def ws(websocket: WebSocket) -> None:
        await websocket.accept()
        server_state.sockets.append(websocket)
        try:
            while True:
                message = json.loads(await websocket.receive_text())
                if message.get("op") == "subscribe":
                    server_state.subscribed.set()
        except WebSocketDisconnect:
            pass
        finally:
            server_state.sockets.remove(websocket)

    async def one_queue(request: Request) -> JSONResponse:
        return JSONResponse(server_state.queue_body)

    app = Starlette(
        routes=[
            WebSocketRoute("/ws", ws),
            Route("/v1/queues/{queue}", one_queue),
            Mount("/static", StaticFiles(directory=REPO_ROOT / "static")),
        ]
    )
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            await asyncio.sleep(0.01)
        yield server_state
    finally:
        server.should_exit = True
        await asyncio.wait_for(serving, 10)
        sock.close()


def contact(
    contact_id: str, position: int | None, basis: str | None, **changes: Any
) -> dict[str, Any]:
    event = {
        "type": "snapshot",
        "instance": INSTANCE,
        "contact": contact_id,
        "queue": QUEUE,
        "position": position,
        "ewt": None if position is None else 60 * position,
        "at": "2026-11-24T09:55:49.731Z",
        "stale": False,
        "reason": None,
        "enqueued": None,
        "basis": basis,
        "seq": 1,
    }
    return {**event, **changes}


def figures(waiting: int, seq: int, **changes: Any) -> dict[str, Any]:
    event = {
        "type": "queue",
        "instance": INSTANCE,
        "queue": QUEUE,
        "name": "Billing",
        "waiting": waiting,
        "oldest": 125,
        "agentsAvailable": 4,
        "at": "2026-11-24T09:55:49.731Z",
        "stale": False,
        "seq": seq,
    }
    return {**event, **changes}


@pytest.fixture
async def scripted() -> AsyncIterator[ScriptedServer]:
    async with scripted_server() as server:
        yield server


async def test_wallboard_marks_inferred_positions_and_says_how_each_wait_ended(page, scripted):
    await page.goto(f"{scripted.url}/static/wallboard.html?queues={QUEUE}")
    await asyncio.wait_for(scripted.subscribed.wait(), 10)
    await scripted.send(
        {"type": "surprise", "queue": QUEUE},  # a type it does not know: ignored
        contact(C1, 1, "read", newMember="ignored"),
        contact(C2, 2, "inferred"),
        contact(C3, 3, "inferred"),
        figures(5, 100, unknownMember=True),
    )
    rows = page.locator(panel(QUEUE, "tbody tr:not(.leaving)"))
    await eventually(lambda: _count(rows, 3))
    assert await stat(page, QUEUE, "waiting") == "5"
    assert await stat(page, QUEUE, "listed") == "3 listed"
    assert await stat(page, QUEUE, "agents") == "4"
    assert (await stat(page, QUEUE, "oldest")).startswith("2:0")
    assert (await page.inner_text(panel(QUEUE, ".panel-title"))).strip() == "Billing"

    # An inferred position carries a subtle mark, and says so to assistive tech; a read one not.
    read, inferred = rows.nth(0), rows.nth(1)
    assert await read.get_attribute("data-basis") == "read"
    assert await inferred.get_attribute("data-basis") == "inferred"
    mark = "el => getComputedStyle(el, '::after').content"
    assert await read.locator("th").evaluate(mark) == "none"
    assert "≈" in await inferred.locator("th").evaluate(mark)
    table = page.get_by_role("table", name="Waiting contacts in Billing, by position")
    tree = await table.aria_snapshot()
    assert "2 (inferred)" in tree and "1 (inferred)" not in tree
    await screenshot(page, "wallboard-inferred")

    # Each end reason is shown on the row as it leaves.
    await scripted.send(
        contact(C1, None, None, type="ended", reason="connected_to_agent", seq=2),
        contact(C2, None, None, type="ended", reason="disconnected", seq=2),
        contact(C3, None, None, type="ended", reason="left_queue", seq=2),
    )
    for contact_id, reason, text in (
        (C1, "connected_to_agent", "Answered"),
        (C2, "disconnected", "Hung up"),
        (C3, "left_queue", "Left queue"),
    ):
        row = page.locator(panel(QUEUE, f"tbody tr[data-contact='{contact_id}']"))
        await eventually(lambda row=row, reason=reason: _attribute(row, "data-ended", reason))
        assert (await row.locator(".outcome").inner_text()).strip() == text
    await eventually(lambda: _count(page.locator(panel(QUEUE, "tbody tr")), 0))

    # Figures the service could not refresh are shown as such; an older seq is ignored.
    await scripted.send(figures(5, 101, stale=True), figures(9, 50))
    state = page.locator(panel(QUEUE, "[data-stat='figures-state']"))
    await eventually(lambda: _contains(state, "not updated since"))
    assert await stat(page, QUEUE, "waiting") == "5"
    assert "figures-stale" in (await page.get_attribute(panel(QUEUE), "class") or "")


async def _count(locator, expected: int) -> bool:
    return await locator.count() == expected


async def _contains(locator, text: str) -> bool:
    return text in (await locator.inner_text())


async def test_the_picker_offers_every_queue_connect_names(page, emulator, service):
    sales, billing = emulator.queues["sales"], emulator.queues["billing"]
    await track(service, (await emulator.create_contact("sales"))["contactId"])
    token = mint_test_token("queues", queues=["*"])

    async def sales_listed() -> bool:
        # The page lists the queues with contacts when it loads (and re-reads them every
        # minute): load it once the tracked contact has been placed in its queue.
        response = await service.http.get(
            "/v1/queues", headers={"Authorization": f"Bearer {token}"}
        )
        return any(q["queue"] == sales for q in response.json().get("queues", []))

    await eventually(sales_listed)
    await page.goto(f"{service.url}/static/wallboard.html#token={token}")
    # The queue with a contact is shown; billing (no contacts) is only offered, by its name.
    await page.locator(panel(sales)).wait_for()
    await page.click("#picker summary")
    choice = page.get_by_role("checkbox", name="billing")
    await choice.wait_for()
    assert not await choice.is_checked()
    assert await page.locator(panel(billing)).count() == 0
    await choice.check()
    await page.locator(panel(billing)).wait_for()
    await eventually(lambda: _has_text(page.locator(panel(billing, ".panel-title")), "billing"))
    await eventually(lambda: _equals(stat(page, billing, "agents"), "0"))
