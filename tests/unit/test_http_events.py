"""`POST /v1/events` in process (the app's own lifespan, httpx over ASGI, the memory bus and
log): auth by events key or service token, limits, 400/401/413/503, the counts, and the feed
handing every accepted event to the poller's `apply_contact_event`."""

from __future__ import annotations

import copy
import json
from collections.abc import AsyncIterator, Sequence

import httpx
import pytest
from prometheus_client import REGISTRY

from server.access.policy import load_events_key, secrets_to_scrub
from server.app import create_app
from server.bus import BusUnavailable, MemoryBackend
from server.connect.contact_events import ConnectContactEvent
from server.connect.event_log import MemoryContactEventLog
from server.http.events import MAX_EVENTS_PER_REQUEST
from server.settings import Settings
from tests.bus.conftest import eventually
from tests.support.contact_events import INSTANCE, QUEUED_CAPTURE, envelope
from tests.support.service import TEST_SECRET, mint_test_token

EVENTS_KEY = "events-key-0123456789abcdef"
KEY = {"X-Queuecast-Events-Key": EVENTS_KEY}


def counted(outcome: str) -> float:
    labels = {"outcome": outcome}
    return REGISTRY.get_sample_value("queuecast_contact_events_total", labels) or 0.0


@pytest.fixture
async def service(monkeypatch) -> AsyncIterator[tuple[httpx.AsyncClient, object]]:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    settings = Settings(
        secret=TEST_SECRET,
        events_key=EVENTS_KEY,
        instance_id=INSTANCE,
        connect_endpoint_url="http://127.0.0.1:9",  # never called: nothing is tracked
    )
    app = create_app(settings, backend=MemoryBackend())
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://queuecast") as http:
            yield http, app.state.runtime


async def test_taken_once_counted_and_applied(service) -> None:
    http, runtime = service
    before = {o: counted(o) for o in ("accepted", "duplicate", "ignored")}
    first = await http.post("/v1/events", json=envelope(1), headers=KEY)
    assert first.status_code == 200
    assert first.json() == {"accepted": 1, "duplicates": 0, "ignored": 0}
    retried = await http.post("/v1/events", json=envelope(1), headers=KEY)
    assert retried.json() == {"accepted": 0, "duplicates": 1, "ignored": 0}
    other = envelope(3)
    other["detail"]["instanceArn"] = (
        "arn:aws:connect:x:1:instance/" + "9" * 8 + "-9999-4999-8999-" + "9" * 12
    )
    foreign = {"source": "aws.ec2", "detail-type": "EC2 Thing", "detail": {}, "id": "x"}
    batch = await http.post(
        "/v1/events", json=[envelope(2), envelope(2), other, foreign], headers=KEY
    )
    assert batch.json() == {"accepted": 1, "duplicates": 1, "ignored": 2}
    assert counted("accepted") - before["accepted"] == 2
    assert counted("duplicate") - before["duplicate"] == 2
    assert counted("ignored") - before["ignored"] == 2

    await eventually(lambda: runtime.contact_event_feed.applied == 2)
    assert runtime.poller.events_applied["QUEUED"] == 2  # the queue model got them
    status = (await http.get("/v1/status", headers=_service_token())).json()["contactEvents"]
    assert status["accepted"] == 2 and status["duplicates"] == 2 and status["ignored"] == 2
    assert status["applied"] == 2 and status["running"] and status["connected"]


def _service_token(scope: str = "service", **claims) -> dict[str, str]:
    return {"Authorization": f"Bearer {mint_test_token(scope, **claims)}"}


async def test_credentials(service) -> None:
    http, _ = service
    before = counted("unauthorized")
    for headers in (
        {},
        {"X-Queuecast-Events-Key": "wrong-key-0123456789abcdef"},
        {"X-Queuecast-Events-Key": ""},
        {"X-Queuecast-Events-Key": EVENTS_KEY + "x"},
        {"Authorization": "Bearer garbage"},
        # A presented key is checked even with a good token beside it.
        {"X-Queuecast-Events-Key": "wrong", **_service_token()},
    ):
        refused = await http.post("/v1/events", json=envelope(1), headers=headers)
        assert refused.status_code == 401, headers
        assert refused.json()["code"] == "unauthorized"
    wrong_scope = await http.post(
        "/v1/events", json=envelope(1), headers=_service_token("queues", queues=["*"])
    )
    assert wrong_scope.status_code == 403
    assert counted("unauthorized") - before == 7
    by_token = await http.post("/v1/events", json=envelope(1), headers=_service_token())
    assert by_token.status_code == 200 and by_token.json()["accepted"] == 1


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (b"{not json", 400, "bad_json"),
        (b"", 400, "bad_event"),  # no body is no envelope
        (b'"QUEUED"', 400, "bad_event"),
        (b"[1]", 400, "bad_event"),
        (json.dumps({"detail": {}}).encode(), 400, "bad_event"),
        (json.dumps({**QUEUED_CAPTURE, "id": ""}).encode(), 400, "bad_event"),
        (b"[" + b"[" * 5000 + b"]" * 5000 + b"]", 400, "bad_json"),
        (b" " * (1024 * 1024 + 1), 413, "too_large"),
        (json.dumps([{}] * (MAX_EVENTS_PER_REQUEST + 1)).encode(), 413, "too_many_events"),
    ],
)
async def test_what_can_never_be_taken(service, body: bytes, status: int, code: str) -> None:
    http, runtime = service
    response = await http.post("/v1/events", content=body, headers=KEY)
    assert response.status_code == status, response.text
    assert response.json()["code"] == code
    assert runtime.contact_events.accepted == 0


async def test_one_bad_envelope_in_a_batch_names_it_and_takes_none(service) -> None:
    http, runtime = service
    bad = copy.deepcopy(envelope(2))
    del bad["detail"]["contactId"]
    response = await http.post("/v1/events", json=[envelope(1), bad], headers=KEY)
    assert response.status_code == 400
    assert response.json()["message"].startswith("envelope 1: `detail.contactId` is missing")
    assert runtime.contact_events.accepted == 0


class DownLog(MemoryContactEventLog):
    async def append(self, events: Sequence[ConnectContactEvent]) -> int:
        raise BusUnavailable("redis: ConnectionError")


async def test_503_with_retry_after_while_the_log_is_down(service) -> None:
    http, runtime = service
    runtime.contact_events._log = DownLog()
    before = counted("unavailable")
    response = await http.post("/v1/events", json=envelope(1), headers=KEY)
    assert response.status_code == 503
    assert int(response.headers["retry-after"]) > 0
    assert response.json()["code"] == "unavailable"
    assert counted("unavailable") - before == 1


def test_events_key_from_flag_env_or_file(tmp_path) -> None:
    assert load_events_key(Settings()) is None
    assert load_events_key(Settings(events_key=EVENTS_KEY)) == EVENTS_KEY
    key_file = tmp_path / "events.key"
    key_file.write_text(f"  {EVENTS_KEY}\n")
    from_file = Settings(events_key_file=str(key_file))
    assert load_events_key(from_file) == EVENTS_KEY
    assert EVENTS_KEY in secrets_to_scrub(from_file)  # the log redactor hides it
    assert Settings(events_key=EVENTS_KEY).redacted()["events_key"] == "***"
    with pytest.raises(ValueError, match="not both"):
        load_events_key(Settings(events_key=EVENTS_KEY, events_key_file=str(key_file)))
    with pytest.raises(ValueError, match="16"):
        load_events_key(Settings(events_key="short"))
    with pytest.raises(ValueError, match="--events-key-file: cannot read"):
        load_events_key(Settings(events_key_file=str(tmp_path / "missing")))
    loaded = Settings.load(environ={"QUEUECAST_EVENTS_KEY_FILE": str(key_file)})
    assert load_events_key(loaded) == EVENTS_KEY
