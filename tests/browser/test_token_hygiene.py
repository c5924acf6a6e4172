"""Tokens stay out of the DOM, URLs and history (issue 14, item 11): the widget takes its
token as a property, the wallboard keeps its token in sessionStorage and asks for one."""

from __future__ import annotations

import pytest

from tests.browser.conftest import eventually, mount_widget, track
from tests.support.service import mint_test_token

pytestmark = pytest.mark.browser


async def test_widget_token_as_a_property_never_reaches_the_dom(page, emulator, service):
    mine = (await emulator.create_contact("sales"))["contactId"]
    widget = await mount_widget(page, service, mine, token_property=True)
    await widget.wait_for("s => s.position === 1")
    markup = await page.evaluate("() => document.documentElement.outerHTML")
    assert "eyJ" not in markup
    assert await page.evaluate("() => document.querySelector('queue-status').token") is True
    assert not await page.evaluate(
        "() => document.querySelector('queue-status').hasAttribute('token')"
    )


async def test_wallboard_takes_the_fragment_token_out_of_the_address(page, emulator, service):
    sales = emulator.queues["sales"]
    contact = (await emulator.create_contact("sales"))["contactId"]
    await track(service, contact)
    token = mint_test_token("queues", queues=[sales])
    await page.goto(f"{service.url}/static/wallboard.html?queues={sales}:Sales#token={token}")
    await page.wait_for_selector(f"section[data-queue='{sales}'] tbody tr")
    assert token not in page.url
    assert await page.evaluate("() => location.hash") == ""
    stored = await page.evaluate("() => sessionStorage.getItem('queuecast.wallboard.token')")
    assert stored == token
    # A reload (same tab) keeps working from sessionStorage alone.
    await page.reload()
    await page.wait_for_selector(f"section[data-queue='{sales}'] tbody tr")


async def test_wallboard_asks_for_a_token_when_it_has_none(page, emulator, service):
    sales = emulator.queues["sales"]
    contact = (await emulator.create_contact("sales"))["contactId"]
    await track(service, contact)
    token = mint_test_token("queues", queues=[sales])
    asked: list[str] = []

    async def answer(dialog):
        asked.append(dialog.message)
        await dialog.accept(token)

    page.on("dialog", answer)
    await page.goto(f"{service.url}/static/wallboard.html?queues={sales}:Sales")
    await page.wait_for_selector(f"section[data-queue='{sales}'] tbody tr")
    assert len(asked) == 1 and "token" in asked[0]

    async def stored() -> bool:
        value = await page.evaluate("() => sessionStorage.getItem('queuecast.wallboard.token')")
        return value == token

    await eventually(stored)
