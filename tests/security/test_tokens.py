"""Tokens, limits and redaction without any I/O: every rule, accepted and refused."""

from __future__ import annotations

import time
import uuid

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from server.access.policy import default_content_security_policy, hmac_secrets
from server.access.redaction import Redactor
from server.access.tokens import ANONYMOUS, Grant, TokenError, TokenVerifier, mint
from server.browser.limits import (
    Admission,
    MessageRate,
    PollQuota,
    RefusalLog,
    SocketsPerAddress,
    client_key,
)
from server.settings import Settings

SECRET = "s" * 40
OTHER = "o" * 40
CONTACT = str(uuid.uuid4())
INSTANCE = str(uuid.uuid4())


def verifier(**kwargs) -> TokenVerifier:
    return TokenVerifier({None: SECRET, "k2": OTHER}, **kwargs)


def outcome(token: str, v: TokenVerifier | None = None) -> str:
    with pytest.raises(TokenError) as refused:
        (v or verifier()).verify(token)
    return refused.value.outcome


def test_each_scope_round_trips():
    v = verifier()
    contact = v.verify(mint(SECRET, scope="contact", contact=CONTACT, instance=INSTANCE))
    assert (contact.scope, contact.contact, contact.instance) == ("contact", CONTACT, INSTANCE)
    assert contact.exp is not None and contact.exp > time.time()
    queues = v.verify(mint(SECRET, scope="queues", queues=["q1", "q2"]))
    assert queues.queues == frozenset({"q1", "q2"})
    assert v.verify(mint(SECRET, scope="queues", queues=["*"])).queues is None
    assert v.verify(mint(SECRET, scope="service")).scope == "service"


def test_kid_selects_the_key_for_rotation():
    v = verifier()
    assert v.verify(mint(OTHER, scope="service", kid="k2")).scope == "service"
    assert outcome(mint(OTHER, scope="service", kid="k3")) == "unknown_kid"
    assert outcome(mint(SECRET, scope="service", kid="k2")) == "bad_signature"
    assert outcome(mint(OTHER, scope="service")) == "bad_signature"  # no kid: default key


def test_refusals():
    now = time.time()
    assert outcome(mint(SECRET, scope="service", ttl=60, now=now - 120)) == "expired"
    assert outcome(mint(SECRET, scope="service", audience="someone-else")) == "wrong_audience"
    assert outcome(mint(SECRET, scope="service", ttl=10**6)) == "too_long_lived"
    assert outcome("not.a.token") == "malformed"
    assert outcome("x" * 10_000) == "malformed"
    assert outcome(jwt.encode({"aud": "queuecast", "scope": "service"}, SECRET)) == "bad_claims"
    no_aud = jwt.encode({"exp": int(now) + 60, "scope": "service"}, SECRET)
    assert outcome(no_aud) == "bad_claims"
    bad_scope = jwt.encode({"exp": int(now) + 60, "aud": "queuecast", "scope": "admin"}, SECRET)
    assert outcome(bad_scope) == "bad_claims"
    no_sub = jwt.encode({"exp": int(now) + 60, "aud": "queuecast", "scope": "contact"}, SECRET)
    assert outcome(no_sub) == "bad_claims"
    no_queues = jwt.encode({"exp": int(now) + 60, "aud": "queuecast", "scope": "queues"}, SECRET)
    assert outcome(no_queues) == "bad_claims"
    future = jwt.encode(
        {"exp": int(now) + 600, "iat": int(now) + 300, "aud": "queuecast", "scope": "service"},
        SECRET,
    )
    assert outcome(future) == "immature"
    unsigned = jwt.encode(
        {"exp": int(now) + 60, "aud": "queuecast", "scope": "service"}, None, "none"
    )
    assert outcome(unsigned) == "bad_algorithm"
    hs512 = jwt.encode(
        {"exp": int(now) + 60, "aud": "queuecast", "scope": "service"}, SECRET * 2, "HS512"
    )
    assert outcome(hs512) == "bad_algorithm"


def test_leeway_forgives_small_skew_only():
    now = time.time()
    v = verifier(leeway=10)
    assert v.verify(mint(SECRET, scope="service", ttl=60, now=now - 65)).scope == "service"
    assert outcome(mint(SECRET, scope="service", ttl=60, now=now - 75), v) == "expired"


@pytest.mark.parametrize("kind", ["rsa", "ec"])
def test_public_key_tokens_and_no_algorithm_confusion(kind):
    if kind == "rsa":
        private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        algorithm = "RS256"
    else:
        private = ec.generate_private_key(ec.SECP256R1())
        algorithm = "ES256"
    pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    v = TokenVerifier(public_key=pem)
    claims = {"exp": int(time.time()) + 60, "aud": "queuecast", "scope": "service"}
    assert v.verify(jwt.encode(claims, private, algorithm)).scope == "service"
    # Signed by another key pair of the same kind: refused.
    other = (
        rsa.generate_private_key(public_exponent=65537, key_size=2048)
        if kind == "rsa"
        else ec.generate_private_key(ec.SECP256R1())
    )
    assert outcome(jwt.encode(claims, other, algorithm), v) == "bad_signature"
    # The classic confusion: an HS256 token keyed with the public key's PEM text.
    forged = jwt.api_jws.PyJWS()
    forged._algorithms["HS256"].prepare_key = lambda key: key  # bypass PyJWT's PEM guard
    token = forged.encode(
        jwt.utils.force_bytes('{"exp":9999999999,"aud":"queuecast","scope":"service"}'),
        pem,
        "HS256",
    )
    assert outcome(token, v) == "unknown_kid"


def test_short_secrets_are_refused():
    with pytest.raises(ValueError, match="at least 32"):
        TokenVerifier({None: "short"})
    with pytest.raises(ValueError, match="at least 32"):
        mint("short", scope="service")


def test_grants():
    mine = Grant("contact", contact=CONTACT, instance=INSTANCE)
    assert mine.allows_contact(CONTACT, None)
    assert mine.allows_contact(CONTACT, INSTANCE)
    assert not mine.allows_contact(CONTACT, str(uuid.uuid4()))
    assert not mine.allows_contact(str(uuid.uuid4()), None)
    assert not mine.allows_queue("q1")
    board = Grant("queues", queues=frozenset({"q1"}))
    assert board.allows_queue("q1") and not board.allows_queue("q2")
    assert not board.allows_contact(CONTACT, None)
    assert Grant("queues", queues=None).allows_queue("anything")
    assert ANONYMOUS.allows_contact(CONTACT, None) and ANONYMOUS.allows_queue("q")


def test_message_rate_tells_once_then_closes_persistent_floods():
    rate = MessageRate(rate=5, strikes=3, now=0.0)
    assert [rate.admit(0.0) for _ in range(10)] == [Admission.ADMIT] * 10  # burst of 2x
    assert rate.admit(0.0) is Admission.DROP_AND_TELL
    assert rate.admit(0.0) is Admission.DROP
    assert rate.admit(0.0) is Admission.DROP
    assert rate.admit(0.0) is Admission.CLOSE
    calm = MessageRate(rate=5, strikes=3, now=0.0)
    for second in range(60):  # at the rate: never dropped
        assert all(calm.admit(second + i / 5) is Admission.ADMIT for i in range(5))
    bursty = MessageRate(rate=5, strikes=3, now=0.0)
    for burst in range(5):  # a burst over the limit now and then is forgiven
        now = burst * 10.0
        results = [bursty.admit(now) for _ in range(12)]
        assert Admission.CLOSE not in results


def test_sockets_per_address():
    limit = SocketsPerAddress(2)
    assert limit.try_open("a") and limit.try_open("a") and not limit.try_open("a")
    assert limit.try_open("b")
    limit.close("a")
    assert limit.try_open("a")
    unlimited = SocketsPerAddress(0)
    assert all(unlimited.try_open("a") for _ in range(1000))


@pytest.mark.parametrize(
    ("address", "key"),
    [
        ("203.0.113.5", "203.0.113.5"),
        ("2001:db8::1", "2001:db8::/64"),
        ("2001:DB8:0:0:ffff::9", "2001:db8::/64"),
        ("2001:db8:0:1::1", "2001:db8:0:1::/64"),
        ("::ffff:192.0.2.1", "192.0.2.1"),
        ("unknown", "unknown"),
    ],
)
def test_client_key_is_an_ipv4_address_or_an_ipv6_slash_64(address, key):
    assert client_key(address) == key


def test_refusal_log_once_a_minute_per_client_and_bounded():
    refusals = RefusalLog(every=60, max_keys=3)
    assert refusals.should_log("a", 0) and not refusals.should_log("a", 59)
    assert refusals.should_log("a", 60)
    assert refusals.should_log("b", 61) and refusals.should_log("c", 62)
    assert not refusals.should_log("d", 63)  # three clients logged within the minute: full
    assert len(refusals) == 3
    assert refusals.should_log("d", 121)  # "a" and "b" are forgotten by now
    assert len(refusals) <= 3


def test_poll_quota_counts_each_contact_once_per_key():
    quota = PollQuota({"token": 1, "address": 2, "anonymous": 0})
    one = (("token", "t1"), ("address", "a"))
    two = (("token", "t2"), ("address", "a"))
    assert quota.try_take(one, "c1") is None
    assert quota.try_take(one, "c1") is None  # the same contact again: no more room needed
    assert quota.try_take(one, "c2") == ("token", "t1")
    assert quota.try_take(two, "c2") is None
    assert quota.try_take(two, "c3") == ("token", "t2")
    three = (("token", "t3"), ("address", "a"))
    assert quota.try_take(three, "c3") == ("address", "a")  # nothing counted for t3 then
    assert quota.held(("token", "t3")) == 0
    quota.release(one, "c1")
    assert quota.held(("address", "a")) == 2  # c1 is still watched once through `one`
    quota.release(one, "c1")
    assert quota.try_take(three, "c3") is None
    for keys, contact in ((two, "c2"), (three, "c3")):
        quota.release(keys, contact)
    assert len(quota) == 0  # nothing kept for keys that hold nothing
    unlimited = PollQuota({})
    assert all(unlimited.try_take((("anonymous", ""),), f"c{n}") is None for n in range(500))


def test_grants_name_their_token():
    token = mint(SECRET, scope="contact", contact=CONTACT)
    again = mint(SECRET, scope="contact", contact=CONTACT, now=time.time() - 5)
    verifier = TokenVerifier({None: SECRET})
    first = verifier.verify(token)
    assert first.token_id and first.token_id == verifier.verify(token).token_id
    assert verifier.verify(again).token_id != first.token_id


def test_redactor():
    token = mint(SECRET, scope="contact", contact=CONTACT)
    line = f"GET /ws?token={token} secret={SECRET} contact {CONTACT}"
    hashed = Redactor([SECRET], "hash")(line)
    assert token not in hashed and SECRET not in hashed and CONTACT not in hashed
    assert "[token]" in hashed and "id:" in hashed
    assert Redactor([SECRET], "hash")(CONTACT) == Redactor([], "hash")(CONTACT.upper())
    assert CONTACT in Redactor([SECRET], "full")(line)
    assert "[id]" in Redactor([], "none")(line)
    # websockets' DEBUG frame log elides long frames; what is left of a token still goes.
    elided = f'< TEXT \'{{\\"op\\": \\"auth\\", \\"token\\": \\"{token[:22]}...{token[-21:]}\\"}}\''
    scrubbed = Redactor()(elided)
    assert token[:22] not in scrubbed and token[-21:] not in scrubbed, scrubbed
    assert token[-21:] not in Redactor()('{"op":"auth","token":"not-a-jwt-' + token[-21:] + '"}')


def test_settings_hide_every_secret_and_parse_keys(tmp_path):
    key_file = tmp_path / "secret"
    key_file.write_text(SECRET + "\n")
    settings = Settings.load(
        None,
        {
            "QUEUECAST_SECRET_FILE": str(key_file),
            "QUEUECAST_TOKEN_KEYS": f"k2:{OTHER}",
            "QUEUECAST_REDIS_URL": "redis://:hunter2hunter2@127.0.0.1:1/0",
        },
    )
    assert hmac_secrets(settings) == {None: SECRET, "k2": OTHER}
    shown = repr(settings.redacted())
    for secret in (OTHER, "hunter2hunter2"):
        assert secret not in shown
    for f in Settings.options():
        if f.metadata["secret"]:
            assert settings.redacted()[f.name] in ("***", None, ())
    with pytest.raises(ValueError, match="entry 1"):
        hmac_secrets(Settings(token_keys=(OTHER,)))
    with pytest.raises(ValueError, match="not an origin"):
        Settings.load(None, {"QUEUECAST_ALLOWED_ORIGINS": "https://a.example; script-src *"})


def test_default_csp():
    csp = default_content_security_policy(("https://shop.example",))
    assert "connect-src 'self' https://shop.example wss://shop.example" in csp
    assert "frame-ancestors 'self' https://shop.example" in csp
    assert "script-src 'self'" in csp and "unsafe-eval" not in csp
    assert "frame-ancestors *" in default_content_security_policy(("*",))
