"""Accessibility of the widget and the wallboard: roles, names, the live region, motion.

Explicit assertions on the accessibility tree Chromium exposes (through Playwright's role
selectors and ARIA snapshots), rather than a vendored checker.
"""

from __future__ import annotations

import asyncio

import pytest

from tests.browser.conftest import mount_widget
from tests.support.service import mint_test_token

pytestmark = pytest.mark.browser


async def test_widget_roles_names_and_live_region(page, emulator, service):
    contacts = [await emulator.create_contact("sales") for _ in range(3)]
    widget = await mount_widget(page, service, contacts[2]["contactId"])
    await widget.wait_for("s => s.position === 3")

    region = page.get_by_role("region", name="Your place in the queue")
    await region.wait_for()
    assert await page.get_by_role("heading", name="Your place in the queue").count() == 1
    tree = await region.aria_snapshot()
    assert "You are 3rd in line" in tree
    assert "about 6 minutes" in tree
    # The decorative badge and bar are hidden from assistive tech; the words carry it all.
    assert await widget.shadow("[part~='badge']").get_attribute("aria-hidden") == "true"
    assert await widget.shadow("[part~='progress']").get_attribute("aria-hidden") == "true"

    live = widget.shadow("[aria-live]")
    assert await live.count() == 1
    assert await live.get_attribute("aria-live") == "polite"
    assert await live.get_attribute("aria-atomic") == "true"
    await page.wait_for_function(
        "() => document.querySelector('queue-status').shadowRoot"
        ".querySelector('[aria-live]').textContent.includes('3rd')"
    )
    announced = await live.text_content()
    assert announced == "You are 3rd in line. Estimated wait: about 6 minutes."

    # The count-down re-renders every second, but the live region stays quiet.
    await page.evaluate(
        """() => {
          window.__announcements = 0;
          const root = document.querySelector('queue-status').shadowRoot;
          const live = root.querySelector('[aria-live]');
          new MutationObserver(() => window.__announcements++)
            .observe(live, { childList: true, characterData: true, subtree: true });
        }"""
    )
    await asyncio.sleep(2.5)
    assert await page.evaluate("() => window.__announcements") == 0

    # A position change is announced once.
    await emulator.connect(contacts[0])
    await widget.wait_for("s => s.position === 2")
    await page.wait_for_function(
        "() => document.querySelector('queue-status').shadowRoot"
        ".querySelector('[aria-live]').textContent.includes('2nd')"
    )
    assert await live.text_content() == "You are 2nd in line. Estimated wait: about 4 minutes."


async def test_widget_retry_is_keyboard_reachable_and_motion_respects_the_user(
    page, emulator, service
):
    await page.emulate_media(reduced_motion="reduce")
    contact = (await emulator.create_contact("sales"))["contactId"]
    widget = await mount_widget(page, service, contact)
    await widget.wait_for("s => s.position === 1")
    pill = widget.shadow("[part~='status']")
    assert await pill.evaluate("el => getComputedStyle(el, '::before').animationName") == "none"
    bar = widget.shadow("[part~='progress'] > span")
    assert await bar.evaluate("el => getComputedStyle(el).transitionDuration") == "0s"

    # Force a lost connection: the retry button appears, is reachable by Tab, works by Enter.
    await page.evaluate(
        "() => { const w = document.querySelector('queue-status'); w._ws.close(); }"
    )
    await widget.wait_for("s => s.connection === 'reconnecting'")
    retry = page.get_by_role("button", name="Try again")
    await retry.wait_for()
    await page.keyboard.press("Tab")
    assert await retry.evaluate("el => el.matches(':focus')")
    await page.keyboard.press("Enter")
    await widget.wait_for("s => s.connection === 'open'")


async def test_wallboard_landmarks_table_semantics(page, emulator, service):
    contact = (await emulator.create_contact("sales"))["contactId"]
    response = await service.http.put(f"/v1/contacts/{contact}", json={})
    assert response.status_code == 202
    sales = emulator.queues["sales"]
    token = mint_test_token("queues", queues=["*"])
    await page.goto(f"{service.url}/static/wallboard.html?queues={sales}:Sales#token={token}")
    panel = page.get_by_role("region", name="Sales")
    await panel.wait_for()
    table = panel.get_by_role("table", name="Waiting contacts in Sales, by position")
    await table.get_by_role("row").nth(1).wait_for()
    headers = await table.get_by_role("columnheader").all_inner_texts()
    assert [h.strip().lower() for h in headers] == ["#", "contact", "ewt", "in queue", "since"]
    assert await page.get_by_role("status").first.inner_text() in ("Live", "Connecting…")
    tv = page.get_by_role("button", name="TV mode")
    assert await tv.get_attribute("aria-pressed") == "false"
    await tv.click()
    assert await tv.get_attribute("aria-pressed") == "true"
