"""Client → server frames: every valid op parses, every malformed one is a ProtocolError."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from server.browser.protocol import (
    PONG,
    Auth,
    Ping,
    ProtocolError,
    Subscribe,
    Unsubscribe,
    error_frame,
    parse_client_message,
)

CONTACT = "5f1a3c2e-0b4d-4e6f-8a9b-1c2d3e4f5a6b"
INSTANCE = "a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d"
INSTANCE_ARN = f"arn:aws:connect:us-east-1:123456789012:instance/{INSTANCE}"


def parse(payload) -> object:
    return parse_client_message(json.dumps(payload))


def error_code(text) -> str:
    with pytest.raises(ProtocolError) as info:
        parse_client_message(text)
    assert info.value.message == str(info.value)
    return info.value.code


# -- valid ------------------------------------------------------------------------------------


def test_subscribe_contact() -> None:
    assert parse({"op": "subscribe", "contact": CONTACT}) == Subscribe(contact=CONTACT)


def test_subscribe_with_instance_and_since() -> None:
    message = parse({"op": "subscribe", "contact": CONTACT, "instance": INSTANCE, "since": 41})
    assert message == Subscribe(contact=CONTACT, instance=INSTANCE, since=41)


def test_subscribe_accepts_instance_arn_prefixed_ids() -> None:
    # botocore's pattern is `(arn:…:instance/)?uuid`: the id may carry an instance-ARN prefix.
    prefixed = f"arn:aws:connect:us-east-1:123456789012:instance/{CONTACT}"
    assert parse({"op": "subscribe", "contact": prefixed}) == Subscribe(contact=prefixed)
    other = f"arn:aws-us-gov:connect:eu-west-2:1:instance/{CONTACT}"
    assert parse({"op": "unsubscribe", "contact": other}) == Unsubscribe(contact=other)
    message = parse({"op": "subscribe", "contact": CONTACT, "instance": INSTANCE_ARN})
    assert message == Subscribe(contact=CONTACT, instance=INSTANCE_ARN)


def test_subscribe_since_null_is_zero() -> None:
    assert parse({"op": "subscribe", "contact": CONTACT, "since": None}).since == 0


def test_subscribe_queue() -> None:
    assert parse({"op": "subscribe", "queue": "sales"}) == Subscribe(queue="sales")


def test_unsubscribe() -> None:
    assert parse({"op": "unsubscribe", "contact": CONTACT}) == Unsubscribe(contact=CONTACT)
    assert parse({"op": "unsubscribe", "queue": "sales"}) == Unsubscribe(queue="sales")


def test_ping_and_auth() -> None:
    assert parse({"op": "ping"}) == Ping()
    assert parse({"op": "ping", "extra": [1, 2]}) == Ping()
    assert parse({"op": "auth", "token": "t0k"}) == Auth("t0k")


def test_unknown_members_are_ignored() -> None:
    assert parse({"op": "subscribe", "contact": CONTACT, "x": 1}) == Subscribe(contact=CONTACT)


# -- malformed ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text", ["", "not json", "{", '{"op": "ping"', "{'op': 'ping'}", "NaN]", "\x00"]
)
def test_non_json_is_bad_json(text) -> None:
    assert error_code(text) == "bad_json"


@pytest.mark.parametrize("depth", [10_000, 200_000])
def test_deeply_nested_json_is_bad_json_not_a_crash(depth) -> None:
    assert error_code("[" * depth + "]" * depth) == "bad_json"
    assert error_code('{"op":' * depth) == "bad_json"


@pytest.mark.parametrize("text", ["[]", '[{"op":"ping"}]', "null", "1", '"ping"', "true"])
def test_non_objects_are_bad_message(text) -> None:
    assert error_code(text) == "bad_message"


@pytest.mark.parametrize("payload", [{}, {"op": None}, {"op": 1}, {"op": ["ping"]}, {"op": True}])
def test_missing_or_non_string_op_is_bad_message(payload) -> None:
    assert error_code(json.dumps(payload)) == "bad_message"


@pytest.mark.parametrize("op", ["SUBSCRIBE", "publish", "", "ping "])
def test_unknown_op(op) -> None:
    assert error_code(json.dumps({"op": op})) == "unknown_op"


def test_binary_frames_are_bad_message() -> None:
    assert error_code(b'{"op":"ping"}') == "bad_message"


@pytest.mark.parametrize("op", ["subscribe", "unsubscribe"])
@pytest.mark.parametrize(
    "target", [{}, {"contact": CONTACT, "queue": "sales"}, {"contact": None, "queue": None}]
)
def test_exactly_one_target(op, target) -> None:
    assert error_code(json.dumps({"op": op, **target})) == "bad_message"


BAD_CONTACTS = [
    "",
    "not-a-uuid",
    CONTACT.upper(),
    CONTACT + "\n",
    " " + CONTACT,
    CONTACT[:-1],
    CONTACT + "0",
    f"{INSTANCE_ARN}/contact/{CONTACT}",  # a full contact ARN is not what the API accepts
    "x" * 10_000,
    5,
    True,
    ["a"],
    {"id": CONTACT},
]


@pytest.mark.parametrize("op", ["subscribe", "unsubscribe"])
@pytest.mark.parametrize("contact", BAD_CONTACTS, ids=lambda c: repr(c)[:40])
def test_bad_contact_ids(op, contact) -> None:
    with pytest.raises(ProtocolError) as info:
        parse_client_message(json.dumps({"op": op, "contact": contact}))
    assert info.value.code == "bad_id"
    # The offending id is echoed back only when it is a short string.
    if isinstance(contact, str) and len(contact) <= 250:
        assert info.value.contact == contact
    else:
        assert info.value.contact is None


@pytest.mark.parametrize("queue", ["", "x" * 251, "a\nb", 5, ["sales"]], ids=repr)
def test_bad_queue_ids(queue) -> None:
    assert error_code(json.dumps({"op": "subscribe", "queue": queue})) == "bad_id"


@pytest.mark.parametrize("instance", ["", "nope", 7, f"{INSTANCE_ARN}/x", INSTANCE.upper()])
def test_bad_instance_ids(instance) -> None:
    payload = {"op": "subscribe", "contact": CONTACT, "instance": instance}
    assert error_code(json.dumps(payload)) == "bad_id"


@pytest.mark.parametrize("since", [-1, 2**53, 10**100, True, False, 1.5, "3", [1]], ids=repr)
def test_bad_since(since) -> None:
    payload = {"op": "subscribe", "contact": CONTACT, "since": since}
    assert error_code(json.dumps(payload)) == "bad_message"


def test_largest_since_is_accepted() -> None:
    assert parse({"op": "subscribe", "contact": CONTACT, "since": 2**53 - 1}).since == 2**53 - 1


@pytest.mark.parametrize("token", [None, "", 5, ["t"]])
def test_auth_needs_a_token(token) -> None:
    payload = {"op": "auth"} if token is None else {"op": "auth", "token": token}
    assert error_code(json.dumps(payload)) == "bad_message"


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda children: st.lists(children) | st.dictionaries(st.text(), children),
    max_leaves=10,
)


@settings(max_examples=300)
@given(st.text())
def test_arbitrary_text_raises_only_protocol_error(text) -> None:
    try:
        parse_client_message(text)
    except ProtocolError as exc:
        assert exc.code in {"bad_json", "bad_message", "unknown_op", "bad_id"}


@settings(max_examples=300)
@given(
    op=st.sampled_from(["subscribe", "unsubscribe", "ping", "auth", "other"]) | json_values,
    members=st.dictionaries(
        st.sampled_from(["contact", "queue", "instance", "since", "token"]), json_values
    ),
)
def test_arbitrary_objects_raise_only_protocol_error(op, members) -> None:
    try:
        parse_client_message(json.dumps({"op": op, **members}))
    except ProtocolError as exc:
        assert exc.code in {"bad_json", "bad_message", "unknown_op", "bad_id"}


# -- server frames -----------------------------------------------------------------------------


def test_error_frame() -> None:
    assert json.loads(error_frame("bad_id", "nope")) == {
        "type": "error",
        "code": "bad_id",
        "message": "nope",
    }
    assert json.loads(error_frame("bad_id", "nope", CONTACT))["contact"] == CONTACT


def test_pong() -> None:
    assert json.loads(PONG) == {"type": "pong"}
