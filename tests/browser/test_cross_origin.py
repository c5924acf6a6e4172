"""The widget and the wallboard on a customer's own site: pages of a second origin (a plain
HTTP server on another port) embed them exactly as docs/widget.md writes it, pointing at the
service; an origin the service does not allow gets neither."""

from __future__ import annotations

import re
import textwrap

import pytest

from tests.browser.conftest import FAST_POLLING, MountedWidget, eventually, track
from tests.support.customer_site import Page, customer_site
from tests.support.emulator import REPO_ROOT
from tests.support.service import ServiceHandle, mint_test_token, start_service_process

pytestmark = pytest.mark.browser

WIDGET_DOC = REPO_ROOT / "docs" / "widget.md"
DOC_SERVICE = "https://queuecast.example.com"
DOC_SOCKET = "wss://queuecast.example.com"


def documented_block(containing: str) -> str:
    """The fenced block of docs/widget.md that contains `containing`, as written there."""
    fence = re.compile(r"^( *)```\w*\n(.*?)^\1```", re.MULTILINE | re.DOTALL)
    blocks = [textwrap.dedent(m.group(2)) for m in fence.finditer(WIDGET_DOC.read_text())]
    [block] = [b for b in blocks if containing in b]
    return block


def pointed_at(text: str, service: ServiceHandle) -> str:
    """The documented example host replaced by the service under test."""
    socket_base = service.url.replace("http", "ws", 1)
    return text.replace(DOC_SOCKET, socket_base).replace(DOC_SERVICE, service.url)


def documented_csp(containing: str, service: ServiceHandle) -> str:
    block = documented_block(containing).removeprefix("Content-Security-Policy:")
    return pointed_at(" ".join(block.split()), service)


def shop_page(service: ServiceHandle, contact: str) -> Page:
    snippet = documented_block("<queue-status")
    snippet = re.sub(r'contact="[^"]*"', f'contact="{contact}"', snippet)
    token = mint_test_token("contact", contact=contact)
    snippet = re.sub(r'token="[^"]*"', f'token="{token}"', snippet)
    html = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Shop</title></head>'
        f"<body><h1>Your order</h1>{pointed_at(snippet, service)}</body></html>"
    )
    return Page(html, csp=documented_csp("style-src 'self'; connect-src", service))


def portal_page(service: ServiceHandle, queue: str, token: str) -> Page:
    iframe = pointed_at(documented_block("<iframe"), service)
    iframe = re.sub(r"queues=[^#\"]*", f"queues={queue}:Sales", iframe)
    iframe = re.sub(r"token=[^\"]*", f"token={token}", iframe)
    return Page(f'<!doctype html><html lang="en"><title>Portal</title><body>{iframe}</body></html>')


def hosted_wallboard(service: ServiceHandle) -> Page:
    """static/wallboard.html with its two loading lines replaced as the docs say."""
    html = (REPO_ROOT / "static" / "wallboard.html").read_text()
    link, script = pointed_at(documented_block("wallboard.js"), service).strip().splitlines()
    html, links = re.subn(r'<link rel="stylesheet" href="wallboard.css">', link, html)
    html, scripts = re.subn(r'<script type="module" src="wallboard.js"></script>', script, html)
    assert links == scripts == 1, (
        "static/wallboard.html no longer loads them as docs/widget.md says"
    )
    return Page(html, csp=documented_csp("style-src 'self' https://", service))


def wallboard_query(service: ServiceHandle, queue: str, token: str) -> str:
    return f"?server={service.url.replace('http', 'ws', 1)}&queues={queue}:Sales#token={token}"


async def test_the_documented_snippet_runs_the_widget_on_an_allowed_shop_page(page, emulator):
    with customer_site() as shop:
        async with start_service_process(
            emulator, None, *FAST_POLLING, "--allowed-origins", shop.origin
        ) as service:
            ahead, mine = [await emulator.create_contact("sales") for _ in range(2)]
            shop.pages["/order.html"] = shop_page(service, mine["contactId"])
            async with page.expect_response(lambda r: r.url.endswith("queue-status.js")) as script:
                await page.goto(shop.url("/order.html"))
            headers = (await script.value).headers
            assert headers["access-control-allow-origin"] == shop.origin
            assert headers["cross-origin-resource-policy"] == "cross-origin"
            assert "origin" in headers["vary"].lower()

            widget = MountedWidget(page, mine["contactId"])
            await widget.wait_for("s => s.position === 2 && s.connection === 'open'")
            assert await widget.text("position") == "You are 2nd in line"
            await emulator.connect(ahead)
            await widget.wait_for("s => s.position === 1")
            assert await widget.text("position") == "You're next"


async def test_a_wallboard_framed_by_and_hosted_on_an_allowed_site(page, emulator):
    with customer_site() as intranet:
        async with start_service_process(
            emulator, None, *FAST_POLLING, "--allowed-origins", intranet.origin
        ) as service:
            sales = emulator.queues["sales"]
            contacts = [(await emulator.create_contact("sales"))["contactId"] for _ in range(2)]
            for contact in contacts:
                await track(service, contact)
            token = mint_test_token("queues", queues=[sales])
            rows = f"section[data-queue='{sales}'] tbody tr:not(.leaving)"

            # Framed: the service's own page inside the intranet's.
            intranet.pages["/portal.html"] = portal_page(service, sales, token)
            await page.goto(intranet.url("/portal.html"))
            framed = page.frame_locator("iframe").locator(rows)
            await eventually(lambda: _count_is(framed, 2))

            # Hosted: the intranet serves the page, the service its script, styles and data.
            intranet.pages["/wallboard.html"] = hosted_wallboard(service)
            read = f"{service.url}/v1/queues/{sales}"
            async with page.expect_response(lambda r: r.url == read) as reconciled:
                await page.goto(
                    intranet.url("/wallboard.html") + wallboard_query(service, sales, token)
                )
            assert (await reconciled.value).status == 200
            assert (await reconciled.value).headers[
                "access-control-allow-origin"
            ] == intranet.origin
            await eventually(lambda: _count_is(page.locator(rows), 2))
            assert await page.inner_text("#connection") == "Live"
            await emulator.connect(contacts[0])
            await eventually(lambda: _count_is(page.locator(rows), 1))


async def _count_is(locator, expected: int) -> bool:
    return await locator.count() == expected


async def test_a_site_that_is_not_allowed_gets_no_widget_no_board_no_socket(page, emulator):
    with customer_site() as shop, customer_site() as stranger:
        async with start_service_process(
            emulator, None, *FAST_POLLING, "--allowed-origins", shop.origin
        ) as service:
            mine = (await emulator.create_contact("sales"))["contactId"]
            sales = emulator.queues["sales"]
            token = mint_test_token("queues", queues=[sales])
            console: list[str] = []
            page.on("console", lambda message: console.append(message.text))

            # The documented snippet: the browser refuses to run the script.
            stranger.pages["/order.html"] = shop_page(service, mine)
            await page.goto(stranger.url("/order.html"))
            await eventually(lambda: _mentions(console, "CORS policy"))
            assert await page.evaluate("() => customElements.get('queue-status') === undefined")

            # Framing: frame-ancestors leaves the frame empty.
            stranger.pages["/portal.html"] = portal_page(service, sales, token)
            await page.goto(stranger.url("/portal.html"))
            await eventually(lambda: _mentions(console, "frame-ancestors"))
            assert await page.frame_locator("iframe").locator("#panels").count() == 0

            # Hosted elsewhere: the board's script is refused too, so it never connects.
            stranger.pages["/wallboard.html"] = hosted_wallboard(service)
            refused_before = sum("CORS policy" in line for line in console)
            await page.goto(
                stranger.url("/wallboard.html") + wallboard_query(service, sales, token)
            )
            await eventually(lambda: _mentions(console, "CORS policy", refused_before + 1))
            assert await page.get_attribute("#connection", "data-state") == "connecting"

            # Nor would a script of the stranger's own get the socket or the queue.
            stranger.pages["/probe.html"] = Page("<!doctype html><title>probe</title>")
            await page.goto(stranger.url("/probe.html"))
            assert await probe(page, service, sales, token) == {
                "socket": "refused",
                "read": "blocked",
            }
            metrics = (await service.http.get("/metrics")).text
            # The handshake and the preflight, both refused for their origin.
            assert 'queuecast_limit_hits_total{limit="origin"} 2.0' in metrics

            # The same probe from the allowed site gets both.
            shop.pages["/probe.html"] = Page("<!doctype html><title>probe</title>")
            await page.goto(shop.url("/probe.html"))
            assert await probe(page, service, sales, token) == {"socket": "open", "read": 200}


PROBE = """async ([ws, read, token]) => {
  const socket = await new Promise((resolve) => {
    const s = new WebSocket(ws);
    s.onopen = () => { resolve("open"); s.close(); };
    s.onclose = () => resolve("refused");
  });
  let status;
  try {
    status = (await fetch(read, { headers: { Authorization: `Bearer ${token}` } })).status;
  } catch {
    status = "blocked";
  }
  return { socket, read: status };
}"""


async def probe(page, service: ServiceHandle, queue: str, token: str) -> dict:
    """Open the service's socket and read a queue from the page's origin."""
    read = f"{service.url}/v1/queues/{queue}"
    return await page.evaluate(PROBE, [service.ws_url, read, token])


async def _mentions(console: list[str], text: str, times: int = 1) -> bool:
    return sum(text in line for line in console) >= times
