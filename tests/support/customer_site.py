"""A customer's own web site for embedding tests: a plain HTTP server on another loopback port
(so another origin than the service's), serving the pages a test gives it, with their headers.

    with customer_site() as site:                   # bound first: its origin is known
        site.pages["/shop.html"] = Page(html, csp="script-src 'self' ...")
        ... start the service with --allowed-origins site.origin ...
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass(frozen=True)
class Page:
    body: str
    csp: str | None = None
    content_type: str = "text/html; charset=utf-8"


@dataclass
class CustomerSite:
    origin: str
    pages: dict[str, Page] = field(default_factory=dict)
    requested: list[str] = field(default_factory=list)

    def url(self, path: str) -> str:
        return self.origin + path


@contextlib.contextmanager
def customer_site() -> Iterator[CustomerSite]:
    site: CustomerSite

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            site.requested.append(path)
            page = site.pages.get(path)
            if page is None:
                self.send_error(404)
                return
            body = page.body.encode()
            self.send_response(200)
            self.send_header("Content-Type", page.content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            if page.csp is not None:
                self.send_header("Content-Security-Policy", page.csp)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    site = CustomerSite(f"http://127.0.0.1:{server.server_address[1]}")
    thread = threading.Thread(target=server.serve_forever, name="customer-site", daemon=True)
    thread.start()
    try:
        yield site
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
