"""Browser fixtures: Debian's Chromium through Playwright (async API), real processes on loopback.

No browser is downloaded and nothing is skipped: without /usr/bin/chromium these tests fail
(scripts/test installs it with apt-get). Screenshots go to artifacts/screenshots/ (git-ignored).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.async_api import Browser, Page, async_playwright

from tests.support import TIMEOUT_SCALE
from tests.support.emulator import (
    REPO_ROOT,
    EmulatorHandle,
    read_ready,
    start_emulator_process,
    stop_process,
)
from tests.support.redis import RedisServer, running_redis
from tests.support.service import ServiceHandle, mint_test_token, start_service_process

pytestmark = pytest.mark.browser

CHROMIUM = os.environ.get("QUEUECAST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = REPO_ROOT / "artifacts" / "screenshots"
WAIT_MS = 15_000 * TIMEOUT_SCALE
# No agents, no arrivals, nobody abandons: contacts move only when a test moves them. No quota:
# the poller may ask as often as the test needs.
QUIET_FLAGS = ("--arrivals", "0", "--agents", "0", "--mean-patience", "0", "--no-quota")
FAST_POLLING = ("--poll-interval", "0.25", "--ewt-threshold", "0", "--linger", "2")
EVENT_NAMES = ("update", "ended", "callback-offer", "deflect", "token-expired", "error")


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: install it with `apt-get install -y chromium`")
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield launched
        finally:
            await launched.close()


@pytest.fixture
async def page(browser: Browser) -> AsyncIterator[Page]:
    """A page that fails the test on any uncaught script error."""
    context = await browser.new_context(viewport={"width": 1024, "height": 800})
    opened = await context.new_page()
    errors: list[str] = []
    opened.on("pageerror", lambda error: errors.append(str(error)))
    opened.set_default_timeout(WAIT_MS)
    try:
        yield opened
    finally:
        await context.close()
    assert not errors, f"script errors in the page: {errors}"


@pytest.fixture
async def emulator() -> AsyncIterator[EmulatorHandle]:
    async with start_emulator_process(*QUIET_FLAGS) as handle:
        yield handle


@pytest.fixture
async def service(emulator: EmulatorHandle) -> AsyncIterator[ServiceHandle]:
    async with start_service_process(emulator, None, *FAST_POLLING) as handle:
        yield handle


@pytest.fixture
async def redis_server(tmp_path: Path) -> AsyncIterator[RedisServer]:
    async with running_redis(tmp_path) as server:
        yield server


async def screenshot(page: Page, name: str, around: str | None = None) -> Path:
    """Save a screenshot; `around`: only that element, with a margin for its shadow."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    clip = None
    if around is not None:
        box = await page.locator(around).bounding_box()
        assert box is not None
        margin = 24
        clip = {
            "x": max(0, box["x"] - margin),
            "y": max(0, box["y"] - margin),
            "width": box["width"] + 2 * margin,
            "height": box["height"] + 2 * margin,
        }
    await page.screenshot(path=str(path), animations="disabled", clip=clip)  # type: ignore[arg-type]
    return path


async def track(service: ServiceHandle, contact: str) -> None:
    """PUT-track a contact (its queue comes from DescribeContact, with its enqueue time)."""
    response = await service.http.put(f"/v1/contacts/{contact}", json={})
    assert response.status_code in (200, 202), response.text


async def eventually(
    check: Callable[[], Awaitable[bool]], timeout: float = 15 * TIMEOUT_SCALE
) -> None:
    async with asyncio.timeout(timeout):
        while not await check():
            await asyncio.sleep(0.1)


# -- the widget on a page of the service's own origin ------------------------------------------


@dataclass
class MountedWidget:
    page: Page
    contact: str

    async def state(self) -> dict[str, Any]:
        return await self.page.evaluate("() => ({...document.querySelector('queue-status').state})")  # type: ignore[no-any-return]

    async def events(self, name: str | None = None) -> list[dict[str, Any]]:
        seen: list[dict[str, Any]] = await self.page.evaluate("() => window.__events")
        return [e for e in seen if name is None or e["name"] == name]

    def shadow(self, selector: str) -> Any:
        # Playwright's CSS engine pierces open shadow roots.
        return self.page.locator(f"queue-status {selector}")

    async def text(self, part: str) -> str:
        return (await self.shadow(f"[part~='{part}']").inner_text()).strip()

    async def wait_for(self, predicate_js: str) -> None:
        """Wait until `predicate_js` (a function of the element's state) is true."""
        await self.page.wait_for_function(
            f"() => {{ const s = document.querySelector('queue-status')?.state; "
            f"return !!s && ({predicate_js})(s); }}",
            timeout=WAIT_MS,
        )


async def mount_widget(
    page: Page,
    service: ServiceHandle,
    contact: str,
    *,
    token_property: bool = False,
    **attributes: str,
) -> MountedWidget:
    """Open a page of the service's origin (under its strict CSP) and put a widget in it.

    The page's own markup is written by the test, and listeners are added through the
    DevTools protocol (exempt from CSP); the widget's script is the service's own.

    Args:
        token_property: give the token through the `token` property (never in the DOM)
            instead of the attribute.
    """
    await page.goto(f"{service.url}/healthz")
    await page.set_content(
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1"><title>widget</title>'
        '<script type="module" src="/static/queue-status.js"></script></head>'
        '<body><main id="host"></main></body></html>'
    )
    # Room around the card for screenshots (CSSOM, which a strict CSP allows).
    await page.evaluate(
        "() => { document.body.style.margin = '0'; document.body.style.padding = '24px'; }"
    )
    await page.wait_for_function("() => !!customElements.get('queue-status')")
    attributes = {
        "contact": contact,
        "token": mint_test_token("contact", contact=contact),
        **attributes,
    }
    token = attributes.pop("token") if token_property else None
    await page.evaluate(
        """([names, attributes, token]) => {
          window.__events = [];
          for (const name of names) {
            document.addEventListener(`queue-status:${name}`, (event) =>
              window.__events.push({ name, detail: event.detail }));
          }
          const widget = document.createElement('queue-status');
          for (const [key, value] of Object.entries(attributes)) widget.setAttribute(key, value);
          if (token) widget.token = token;
          document.getElementById('host').append(widget);
        }""",
        [list(EVENT_NAMES), attributes, token],
    )
    return MountedWidget(page, contact)


# -- `queuecast demo` as a process --------------------------------------------------------------


@dataclass
class DemoHandle:
    url: str
    emulator_url: str
    info: dict[str, Any]


@contextlib.asynccontextmanager
async def start_demo_process(*flags: str) -> AsyncIterator[DemoHandle]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "server",
        "demo",
        "--port",
        "0",
        *flags,
        cwd=REPO_ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        info = await asyncio.wait_for(read_ready(proc, "queuecast-demo ready "), 20 * TIMEOUT_SCALE)
        yield DemoHandle(info["url"], info["emulator"], info)
    finally:
        await stop_process(proc)


async def sim_waiting(emulator_url: str, queue_name: str) -> list[dict[str, Any]]:
    async with httpx.AsyncClient(base_url=emulator_url) as http:
        state = (await http.get("/_sim/state")).json()
    for queue in state["instances"][0]["queues"]:
        if queue["name"] == queue_name:
            return queue["waiting"]  # type: ignore[no-any-return]
    raise KeyError(queue_name)


def dumps(value: object) -> str:
    return json.dumps(value, sort_keys=True)
