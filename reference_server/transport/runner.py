"""Running the application: aiohttp's runner, minus its habit of quoting bad requests.

aiohttp answers a request it cannot parse (a request line or header field over its size
limit, a malformed header) with a plain-text 400 that quotes the offending bytes, and logs
a traceback that quotes them again. Tokens travel in exactly those bytes (the query string,
Authorization, Cookie), so any client could make the server write token fragments into its
log and its responses (SEC-001). Here an oversized request gets the spec's JSON error
(message_too_large), any other unparsable one a fixed 400, and the log one line that
holds nothing of the request.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable, Sequence
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError, LineTooLong
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest

from reference_server.transport.node import error_response

log = logging.getLogger("reference_server.transport")
#: aiohttp's own limits, kept: a request line or one header field of at most this many bytes.
MAX_REQUEST_LINE_BYTES = 8190
MAX_HEADER_FIELD_BYTES = 8190


def _is_oversized(exc: HttpProcessingError) -> bool:
    # The pure-Python parser raises LineTooLong; the C parser (llhttp) reports an
    # oversized header as a plain BadHttpMessage whose message names the overflow.
    return isinstance(exc, LineTooLong) or "overflow" in exc.message.lower()


class QuietRequestHandler(RequestHandler):
    def handle_error(
        self,
        request: BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        if not isinstance(exc, HttpProcessingError) or status >= 500:
            return super().handle_error(request, status, exc, message)  # our own failure
        if request.writer.output_size > 0:
            raise ConnectionError("response already started; cannot send the error")
        oversized = _is_oversized(exc)
        log.info(
            "refused an unparsable HTTP request from %s: %s (%s)",
            request.remote,
            "oversized request line or header field" if oversized else "malformed HTTP",
            type(exc).__name__,
        )
        if oversized:
            response: web.Response = error_response(
                "message_too_large",
                f"the request line or a header field exceeds {MAX_HEADER_FIELD_BYTES} bytes "
                "(a token in the query string or a header counts)",
            )
        else:  # not HTTP at all: no REP endpoint was reached, so no REP error code applies
            response = web.Response(status=400, text="400 Bad Request: malformed HTTP request\n")
        response.force_close()
        return response


class QuietServer(web.Server):
    def __call__(self) -> RequestHandler:
        return QuietRequestHandler(self, loop=self._loop, **self._kwargs)


class ReferenceAppRunner(web.AppRunner):
    """An AppRunner whose connections are served by :class:`QuietRequestHandler`."""

    def __init__(self, app: web.Application, **kwargs: Any) -> None:
        kwargs.setdefault("max_line_size", MAX_REQUEST_LINE_BYTES)
        kwargs.setdefault("max_field_size", MAX_HEADER_FIELD_BYTES)
        super().__init__(app, **kwargs)

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        # aiohttp has no parameter for the handler class; Server keeps no per-class state.
        server.__class__ = QuietServer
        return server


async def _serve_until_stopped(
    app: web.Application, sockets: Sequence[socket.socket], **runner_options: Any
) -> None:
    runner = ReferenceAppRunner(app, handle_signals=True, **runner_options)
    await runner.setup()
    try:
        for sock in sockets:
            await web.SockSite(runner, sock).start()
        await asyncio.Event().wait()  # until SIGINT/SIGTERM raise GracefulExit
    finally:
        await runner.cleanup()


def serve(
    app: web.Application,
    sockets: Sequence[socket.socket],
    *,
    new_loop: Callable[[], asyncio.AbstractEventLoop] = asyncio.new_event_loop,
    **runner_options: Any,
) -> None:
    """Serve on bound ``sockets`` until SIGINT or SIGTERM, then shut down (LIFE-007).

    As ``web.run_app`` does: the signal handlers raise GracefulExit out of the loop, and the
    main task is then cancelled, which runs the runner's cleanup (disconnect, close 1001).
    """
    loop = new_loop()
    main = loop.create_task(_serve_until_stopped(app, sockets, **runner_options))
    try:
        loop.run_until_complete(main)
    except (web.GracefulExit, KeyboardInterrupt):
        pass
    finally:
        main.cancel()
        loop.run_until_complete(asyncio.gather(main, return_exceptions=True))
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()
