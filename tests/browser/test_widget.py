"""The customer widget `<queue-status>` in Chromium, against a real service and emulator."""

from __future__ import annotations

import asyncio
import json

import pytest

from tests.browser.conftest import (
    FAST_POLLING,
    eventually,
    mount_widget,
    screenshot,
    track,
)
from tests.support.service import start_service_process

pytestmark = pytest.mark.browser

WIDTHS = {"phone": 375, "desktop": 1024}


async def shoot_widths(page, name: str) -> None:
    for label, width in WIDTHS.items():
        await page.set_viewport_size({"width": width, "height": 600})
        await page.wait_for_timeout(100)
        await screenshot(page, f"widget-{name}-{label}", around="queue-status")
    await page.set_viewport_size({"width": 1024, "height": 800})


async def test_widget_shows_the_true_position_and_wait_follows_the_queue_and_ends(
    page, emulator, service
):
    contacts = [await emulator.create_contact("sales") for _ in range(3)]
    mine = contacts[2]["contactId"]
    widget = await mount_widget(page, service, mine)

    await widget.wait_for("s => s.position === 3")
    [truth] = [w for w in await emulator.waiting("sales") if w["contactId"] == mine]
    state = await widget.state()
    assert state["position"] == truth["position"] == 3
    assert state["ewt"] == round(truth["ewt"]) == 360  # 3 ahead-or-me x 120 s, one "agent"
    assert await widget.text("position") == "You are 3rd in line"
    assert await widget.text("ahead") == "2 people ahead of you"
    assert await widget.text("wait-value") == "about 6 minutes"
    assert await widget.shadow("[part~='status']").get_attribute("data-kind") == "live"

    # Between updates it counts down, a second per second, never below zero.
    first = (await widget.state())["remaining"]
    await asyncio.sleep(2.2)
    later = (await widget.state())["remaining"]
    assert 1 <= first - later <= 3
    await shoot_widths(page, "waiting")

    # The contact ahead is served: the widget moves up to the emulator's new truth.
    await emulator.connect(contacts[0])
    await widget.wait_for("s => s.position === 2")
    [truth] = [w for w in await emulator.waiting("sales") if w["contactId"] == mine]
    assert (await widget.state())["ewt"] == round(truth["ewt"]) == 240
    assert await widget.text("position") == "You are 2nd in line"
    assert await widget.text("ahead") == "1 person ahead of you"

    await emulator.connect(contacts[1])
    await widget.wait_for("s => s.position === 1")
    assert await widget.text("position") == "You're next"
    assert await widget.text("ahead") == "Nobody is ahead of you"
    await shoot_widths(page, "next")

    # Next in line and taken by an agent: the final state, and no more socket.
    await emulator.connect(mine)
    await widget.wait_for("s => s.status === 'ended'")
    state = await widget.state()
    assert state["outcome"] == "connecting"
    assert state["reason"] == "connected_to_agent"
    assert state["connection"] == "closed"
    assert await widget.text("final-title") == "Connecting you to an agent"
    await shoot_widths(page, "ended")
    assert len(await widget.events("ended")) == 1


async def test_widget_left_queue_and_thresholds_fire_each_event_once(page, emulator, service):
    ahead = await emulator.create_contact("sales")
    mine = (await emulator.create_contact("sales"))["contactId"]
    widget = await mount_widget(
        page, service, mine, **{"callback-after": "300", "deflect-position": "3"}
    )
    await widget.wait_for("s => s.position === 2")
    assert await widget.events("callback-offer") == []
    assert await widget.events("deflect") == []

    # Priority 1 goes ahead of us: position 3, EWT 360 s: both thresholds crossed at once.
    jumper = await emulator.create_contact("sales", priority=1)
    await track(service, jumper["contactId"])
    await widget.wait_for("s => s.position === 3")
    await eventually(lambda: _has(widget, "deflect"))
    [offer] = await widget.events("callback-offer")
    [deflect] = await widget.events("deflect")
    assert offer["detail"]["ewt"] == 360 and offer["detail"]["threshold"] == 300
    assert deflect["detail"]["position"] == 3 and deflect["detail"]["threshold"] == 3

    # Further past the thresholds: updates, but neither event again.
    await emulator.create_contact("sales", priority=1)
    await widget.wait_for("s => s.position === 4")
    await asyncio.sleep(0.5)
    assert len(await widget.events("callback-offer")) == 1
    assert len(await widget.events("deflect")) == 1
    updates = await widget.events("update")
    assert [u["detail"]["position"] for u in updates][-3:] == [2, 3, 4]
    seqs = [u["detail"]["seq"] for u in updates]
    assert seqs == sorted(set(seqs))

    # Leaving from position 4 is not "connecting": the rule is position 1 and left_queue.
    await emulator.abandon(mine)
    await widget.wait_for("s => s.status === 'ended'")
    assert (await widget.state())["outcome"] == "left"
    assert await widget.text("final-title") == "You have left the queue"
    assert len(await widget.events("ended")) == 1
    del ahead


async def _has(widget, name: str) -> bool:
    return bool(await widget.events(name))


async def test_widget_reconnects_after_a_restart_and_resumes_with_since(
    page, emulator, redis_server
):
    contacts = [await emulator.create_contact("sales") for _ in range(3)]
    mine = contacts[2]["contactId"]
    sent: list[dict] = []

    def on_socket(ws):
        ws.on("framesent", lambda payload: sent.append(json.loads(payload)))

    page.on("websocket", on_socket)
    async with start_service_process(emulator, redis_server.url, *FAST_POLLING) as service:
        port = service.url.rsplit(":", 1)[1]
        widget = await mount_widget(page, service, mine)
        await widget.wait_for("s => s.position === 3")
        seq_before = (await widget.state())["seq"]
    # The service is gone: the widget says so, keeps the last values, and retries.
    await widget.wait_for("s => s.connection === 'reconnecting'")
    assert (await widget.state())["position"] == 3
    assert await widget.shadow("[part~='status']").get_attribute("data-kind") == "reconnecting"
    await widget.shadow("[part~='retry']").wait_for(state="visible")
    await emulator.connect(contacts[0])

    async with start_service_process(
        emulator, redis_server.url, *FAST_POLLING, "--port", port
    ) as service:
        await widget.wait_for("s => s.connection === 'open' && s.position === 2")
        state = await widget.state()
        assert state["seq"] > seq_before

    subscribes = [m for m in sent if m.get("op") == "subscribe"]
    assert subscribes[0].get("since") is None
    assert subscribes[-1]["since"] >= seq_before
    assert all(m.get("op") != "auth" or m["token"] for m in sent)
    assert sent[0]["op"] == "auth"  # the token travels in the first frame, never the URL
    seqs = [u["detail"]["seq"] for u in await widget.events("update")]
    assert seqs == sorted(set(seqs)), "a widget never shows an older seq after a newer one"
    positions = [u["detail"]["position"] for u in await widget.events("update")]
    assert positions[-1] == 2


@pytest.mark.parametrize(
    ("lang", "position", "ahead", "wait"),
    [
        ("en", "You are 3rd in line", "2 people ahead of you", "about 6 minutes"),
        ("es", "Está en el puesto 3.º", "2 personas delante de usted", "aproximadamente 6 minutos"),
        ("de", "Sie sind an 3. Stelle", "2 Personen vor Ihnen", "etwa 6 Minuten"),
    ],
)
async def test_widget_speaks_each_built_in_language(
    page, emulator, service, lang, position, ahead, wait
):
    contacts = [await emulator.create_contact("sales") for _ in range(3)]
    widget = await mount_widget(page, service, contacts[2]["contactId"], lang=lang)
    await widget.wait_for("s => s.position === 3")
    assert await widget.text("position") == position
    assert await widget.text("ahead") == ahead
    assert await widget.text("wait-value") == wait
    if lang == "de":
        await screenshot(page, "widget-waiting-de", around="queue-status")


async def test_host_page_strings_and_language_switch(page, emulator, service):
    contacts = [await emulator.create_contact("sales") for _ in range(2)]
    widget = await mount_widget(page, service, contacts[1]["contactId"], lang="fr")
    await page.evaluate(
        """() => customElements.get('queue-status').defineStrings('fr', {
          position: 'Vous êtes {ordinal} dans la file',
          ordinal: { one: '{n}er', other: '{n}e' },
          ahead: { one: '{n} personne devant vous', other: '{n} personnes devant vous' },
        })"""
    )
    await widget.wait_for("s => s.position === 2")
    assert await widget.text("position") == "Vous êtes 2e dans la file"
    assert await widget.text("ahead") == "1 personne devant vous"
    # Strings it was not given fall back to English; the element's lang can change live.
    await page.evaluate("() => document.querySelector('queue-status').setAttribute('lang', 'de')")
    assert await widget.text("position") == "Sie sind an 2. Stelle"
