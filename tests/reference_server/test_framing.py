"""The bytes the channels write themselves, read back by independent parsers."""

from __future__ import annotations

import pytest
from websockets.frames import Frame, Opcode
from websockets.streams import StreamReader

from reference_server.transport.framing import http_chunk, sse_event, websocket_text_frame


def _parse_websocket(data: bytes) -> Frame:
    reader = StreamReader()
    reader.feed_data(data)
    parser = Frame.parse(reader.read_exact, mask=False)
    try:
        next(parser)
    except StopIteration as done:
        frame: Frame = done.value
        assert not reader.buffer, "bytes left after the frame"
        return frame
    raise AssertionError("the frame is incomplete")


@pytest.mark.parametrize("length", [0, 1, 125, 126, 65535, 65536, 200_000])
def test_websocket_text_frames_of_every_length_class_parse_back(length: int) -> None:
    payload = b"x" * length
    frame = _parse_websocket(websocket_text_frame(payload))
    assert (frame.opcode, frame.fin, frame.data) == (Opcode.TEXT, True, payload)
    assert not (frame.rsv1 or frame.rsv2 or frame.rsv3), "WS-011: never compressed"


def test_an_sse_event_is_three_fields_and_a_blank_line() -> None:
    event = sse_event("prices=12-0", "stream_event", b'{"a":1}')
    assert event == b'id: prices=12-0\nevent: stream_event\ndata: {"a":1}\n\n'


def test_an_http_chunk_carries_its_length_in_hex() -> None:
    assert http_chunk(b"x" * 26) == b"1a\r\n" + b"x" * 26 + b"\r\n"
