"""The bus's channel: every local listener is handed the same `Delivery`; one that fails does
not keep the others from theirs. (The bus knows nothing of sockets: see test_fanout.py.)"""

from __future__ import annotations

import logging

import pytest

from server.bus.channel import Channel, Delivery
from tests.unit._factories import make_event


class Recorder:
    def __init__(self) -> None:
        self.got: list[Delivery] = []

    def deliver(self, delivery: Delivery) -> None:
        self.got.append(delivery)


class Broken:
    def deliver(self, delivery: Delivery) -> None:
        raise RuntimeError("bug")


def test_every_listener_gets_the_same_delivery(caplog: pytest.LogCaptureFixture) -> None:
    channel = Channel("qc:contact:c-1")
    a, b = Recorder(), Recorder()
    for listener in (a, Broken(), b, b):
        channel.add(listener)
    assert len(channel) == 3 and b in channel
    event = make_event()
    delivery = Delivery(channel.name, event, event.encode().decode())
    with caplog.at_level(logging.ERROR, logger="queuecast.bus"):
        channel.fan_out(delivery)
    assert a.got == [delivery] and b.got == [delivery]
    assert a.got[0] is b.got[0]
    assert "listener failed" in caplog.text
    channel.forget(a)
    channel.forget(a)
    assert len(channel) == 2 and a not in channel
