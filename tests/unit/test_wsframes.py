"""A shared frame is byte for byte what the websockets server protocol would send."""

from __future__ import annotations

import pytest
from websockets.frames import Frame, Opcode
from websockets.protocol import State
from websockets.server import ServerProtocol

from server.browser.ws_protocol import text_frame


def framed_by_websockets(text: str) -> bytes:
    conn = ServerProtocol()
    conn.state = State.OPEN
    conn.send_text(text.encode())
    return b"".join(conn.data_to_send())


@pytest.mark.parametrize("length", [0, 1, 125, 126, 127, 65_535, 65_536, 70_000])
def test_text_frame_matches_websockets(length: int) -> None:
    text = ("é" + "x" * length)[:length]
    assert text_frame(text) == framed_by_websockets(text)


def test_text_frame_parses_back() -> None:
    frame = text_frame('{"type":"update"}')
    parsed = Frame(Opcode.TEXT, b'{"type":"update"}')
    assert frame == parsed.serialize(mask=False)
