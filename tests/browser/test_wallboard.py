"""The wallboard in Chromium: exactly the emulator's waiting contacts, live, in order."""

from __future__ import annotations

import pytest

from tests.browser.conftest import eventually, screenshot, track
from tests.support.emulator import stop_process
from tests.support.service import mint_test_token

pytestmark = pytest.mark.browser


async def shown_rows(page, queue: str) -> list[tuple[str, str]]:
    """(contact, position) of the rows in the panel, top to bottom, leaving rows excluded."""
    rows = await page.eval_on_selector_all(
        f"section[data-queue='{queue}'] tbody tr:not(.leaving)",
        "rows => rows.map(r => [r.dataset.contact, r.dataset.position])",
    )
    return [tuple(row) for row in rows]


async def truth(emulator, queue: str) -> list[tuple[str, str]]:
    return [(w["contactId"], str(w["position"])) for w in await emulator.waiting(queue)]


async def test_wallboard_lists_updates_and_removes_contacts_and_shows_a_lost_connection(
    page, emulator, service
):
    sales, support = emulator.queues["sales"], emulator.queues["support"]
    waiting = [await emulator.create_contact("sales") for _ in range(4)]
    other = await emulator.create_contact("support")
    for contact in [*waiting, other]:
        await track(service, contact["contactId"])
    token = mint_test_token("queues", queues=[sales, support])
    await page.set_viewport_size({"width": 1280, "height": 720})
    await page.goto(
        f"{service.url}/static/wallboard.html?queues={sales}:Sales,{support}:Support#token={token}"
    )

    async def matches(queue: str) -> bool:
        return await shown_rows(page, emulator.queues[queue]) == await truth(emulator, queue)

    await eventually(lambda: matches("sales"))
    await eventually(lambda: matches("support"))
    assert len(await shown_rows(page, sales)) == 4
    assert await page.inner_text(f"section[data-queue='{sales}'] [data-stat='waiting']") == "4"
    assert await page.inner_text(f"section[data-queue='{sales}'] [data-stat='ewt-max']") == "8:00"

    # Served: the first contact goes, everyone moves up.
    await emulator.connect(waiting[0])
    await eventually(lambda: matches("sales"))
    assert [p for _, p in await shown_rows(page, sales)] == ["1", "2", "3"]

    # A priority caller arrives and goes to the top.
    vip = await emulator.create_contact("sales", priority=1)
    await track(service, vip["contactId"])
    await eventually(lambda: matches("sales"))
    assert (await shown_rows(page, sales))[0][0] == vip["contactId"]
    await page.wait_for_timeout(800)  # let the row animations settle
    await screenshot(page, "wallboard")
    await page.click("#tv-toggle")
    await page.set_viewport_size({"width": 1920, "height": 1080})
    await screenshot(page, "wallboard-tv")
    await page.click("#tv-toggle")

    # The service goes away: the board says so at once.
    await stop_process(service.proc)
    await page.wait_for_selector("#connection[data-state='offline']")
    banner = page.locator("#banner")
    await banner.wait_for(state="visible")
    assert "Connection lost" in await banner.inner_text()
    assert await banner.get_attribute("role") == "alert"
    await screenshot(page, "wallboard-offline")


async def test_queue_endpoints_summarise_and_pick_the_least_congested(emulator, service):
    sales, support = emulator.queues["sales"], emulator.queues["support"]
    for queue, count in (("sales", 3), ("support", 1)):
        for _ in range(count):
            await track(service, (await emulator.create_contact(queue))["contactId"])

    async def ready() -> bool:
        body = (await service.http.get(f"/v1/queues/{sales}")).json()
        return body["waiting"] == 3

    await eventually(ready)
    body = (await service.http.get(f"/v1/queues/{sales}")).json()
    assert [c["position"] for c in body["contacts"]] == [1, 2, 3]
    assert (body["ewtMin"], body["ewtMax"]) == (120, 360)
    assert body["longestWait"] is not None and body["oldestEnqueued"] is not None
    listing = (await service.http.get("/v1/queues")).json()
    assert {q["queue"] for q in listing["queues"]} == {sales, support}
    assert listing["leastCongested"] == support
    # A queues token sees only its queues; no token at all is refused.
    token = mint_test_token("queues", queues=[support])
    headers = {"Authorization": f"Bearer {token}"}
    response = await service.http.get(f"/v1/queues/{sales}", headers=headers)
    assert response.status_code == 403
    listing = (await service.http.get("/v1/queues", headers=headers)).json()
    assert [q["queue"] for q in listing["queues"]] == [support]
    assert (await service.http.get("/v1/queues", headers={"Authorization": ""})).status_code == 401
