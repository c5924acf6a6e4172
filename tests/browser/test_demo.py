"""`queuecast demo` end to end: join a queue on the demo page and watch the widget and board."""

from __future__ import annotations

import pytest

from tests.browser.conftest import screenshot, sim_waiting, start_demo_process

pytestmark = pytest.mark.browser


async def test_demo_page_join_flow(page):
    async with start_demo_process("--speed", "5", "--seed", "3") as demo:
        assert demo.info["anonymous"] is True
        await page.set_viewport_size({"width": 1280, "height": 900})
        await page.goto(demo.info["demo"])
        join = page.get_by_role("button", name="Join Support")
        await join.click()

        widget = page.locator("#my-widget")
        await page.wait_for_function(
            "() => document.querySelector('#my-widget')?.state?.position > 0"
        )
        state = await widget.evaluate("w => ({...w.state})")
        contact = state["contact"]
        # The emulator's truth and the widget agree, give or take one step of a queue moving at
        # five times real speed: compare a few times, as a sample can fall between the truth
        # moving and the widget hearing of it.
        for _ in range(20):
            state = await widget.evaluate("w => ({...w.state})")
            waiting = await sim_waiting(demo.emulator_url, "Support")
            assert contact in [w["contactId"] for w in waiting]
            [mine] = [w for w in waiting if w["contactId"] == contact]
            if abs(mine["position"] - state["position"]) <= 1:
                break
            await page.wait_for_timeout(250)
        assert abs(mine["position"] - state["position"]) <= 1
        assert "in line" in await widget.locator("[part~='position']").inner_text() or (
            state["position"] == 1
        )

        # The page logs the widget's events, and the wallboard marks the visitor's row.
        await page.locator("#event-log [data-event='update']").first.wait_for()
        frame = page.frame_locator("#wallboard")
        await frame.locator(f"tr.you[data-contact='{contact}']").wait_for()
        await page.wait_for_timeout(600)
        await screenshot(page, "demo")
        await page.get_by_role("radio", name="Español").click()
        text = await widget.locator("[part~='position']").inner_text()
        assert "puesto" in text or "turno" in text
