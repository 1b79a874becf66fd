"""Bytes on the wire for what the server sends: WebSocket text frames, SSE events, HTTP chunks.

The channels write these straight to the socket, so that one loop iteration's messages for
a client leave in one send. Only the server side of RFC 6455 is needed: unmasked, final,
uncompressed (WS-011 declines permessage-deflate).
"""

from __future__ import annotations

import struct

_TEXT_FINAL = 0x81  # FIN + opcode 1 (text)
_LENGTH_16 = struct.Struct("!BBH")
_LENGTH_64 = struct.Struct("!BBQ")


def websocket_text_frame(payload: bytes) -> bytes:
    """One unmasked, final text frame (RFC 6455 section 5.2)."""
    length = len(payload)
    if length < 126:
        return bytes((_TEXT_FINAL, length)) + payload
    if length < 65536:
        return _LENGTH_16.pack(_TEXT_FINAL, 126, length) + payload
    return _LENGTH_64.pack(_TEXT_FINAL, 127, length) + payload


def sse_event(event_id: str, event_type: str, data: bytes) -> bytes:
    """One SSE event; ``data`` is JSON on one line (orjson never emits a raw newline)."""
    return b"id: %s\nevent: %s\ndata: %s\n\n" % (event_id.encode(), event_type.encode(), data)


def http_chunk(data: bytes) -> bytes:
    """One chunk of an HTTP/1.1 chunked body (RFC 9112 section 7.1)."""
    return b"%x\r\n%s\r\n" % (len(data), data)
