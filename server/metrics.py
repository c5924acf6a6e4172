"""Prometheus metrics of the process (prometheus-client's default registry).

Labels never carry contact ids, tokens or other unbounded or secret values.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

POLLS = Counter("queuecast_polls_total", "GetContactMetrics calls by outcome.", ["outcome"])
POLL_LATENCY = Histogram(
    "queuecast_poll_latency_seconds",
    "GetContactMetrics round-trip time.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
DESCRIBES = Counter(
    "queuecast_describe_contact_total", "DescribeContact calls by outcome.", ["outcome"]
)
CONNECT_CALLS = Counter(
    "queuecast_connect_calls_total",
    "Amazon Connect API calls by API (operation name) and outcome.",
    ["api", "outcome"],
)
TRACKED = Gauge("queuecast_tracked_contacts", "Contacts being polled by this process.")
EFFECTIVE_INTERVAL = Gauge(
    "queuecast_effective_poll_interval_seconds",
    "Seconds between two polls of one contact, given the number tracked and the budget.",
)
POLL_RATE = Gauge(
    "queuecast_poll_rate", "GetContactMetrics requests/s the poller allows itself now."
)
EVENTS_PUBLISHED = Counter(
    "queuecast_events_published_total", "Events committed to the bus by this process."
)
SOCKETS = Gauge("queuecast_websockets", "Open WebSocket connections.")
SUBSCRIPTIONS = Gauge("queuecast_subscriptions", "Subscriptions held by open WebSockets.")
FRAMES_SENT = Counter("queuecast_frames_sent_total", "Frames sent to WebSocket clients.")
OUTBOX_COALESCED = Counter(
    "queuecast_outbox_coalesced_total",
    "Events replaced in a slow client's outbox by a newer state of the same contact.",
)
SOCKETS_CLOSED = Counter(
    "queuecast_websocket_closed_total", "WebSockets closed by the server, by reason.", ["reason"]
)
CLIENT_ERRORS = Counter(
    "queuecast_client_errors_total",
    "Error messages sent to WebSocket clients, by code.",
    ["code"],
)
BUS_CONNECTED = Gauge("queuecast_bus_connected", "1 while the bus listener is connected.")
BUS_RECONNECTS = Counter("queuecast_bus_reconnects_total", "Bus reconnection attempts.")
BUS_WRITERS = Gauge(
    "queuecast_bus_writers",
    "Subscriptions whose updates the fan-out writes to the socket itself (the steady state).",
)
BUS_MALFORMED = Counter(
    "queuecast_bus_malformed_total", "Malformed messages or states read from the bus."
)
READS_BY_PURPOSE = Counter(
    "queuecast_reads_total",
    "GetContactMetrics reads started, by what they were spent on (confirm, first_read, probe).",
    ["purpose"],
)
CONTACT_EVENTS_APPLIED = Counter(
    "queuecast_contact_events_applied_total",
    "Amazon Connect contact events applied to the queue book, by type.",
    ["type"],
)
BOOK_NEWS = Counter(
    "queuecast_book_news_total",
    "News between replicas' queue books: told (learnt here), applied (learnt elsewhere), "
    "dropped (outbox full or Redis away), by kind where known.",
    ["direction", "kind"],
)
CONTACT_EVENTS = Counter(
    "queuecast_contact_events_total",
    "POST /v1/events: envelopes accepted, duplicate or ignored; whole requests malformed, "
    "too_large, unauthorized or unavailable (answered 503).",
    ["outcome"],
)
FAST_PATHS = Gauge(
    "queuecast_fast_path",
    "1 while a fast path past a library's public API is on, 0 while its public, slower path is "
    "used instead (server/_internals.py): framing_protocol, socket_send, bulk_redis_reader.",
    ["path"],
)
