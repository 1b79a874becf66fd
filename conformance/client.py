"""A recording WebSocket client for checks: send envelopes, expect answers, expect silence.

Each :class:`Client` owns one connection and a reader thread that timestamps every frame
on arrival, judges it with :class:`~conformance.frames.FrameChecker`, and files it in an
inbox. Checks then ask for what the spec requires:

* :meth:`Client.send` builds and sends an envelope and returns its id;
* :meth:`Client.expect` waits (bounded) for a matching message and consumes it;
* :meth:`Client.expect_error` does the same for an ``error`` with a given code;
* :meth:`Client.expect_none` proves that no matching message arrived in a quiet window;
* :meth:`Client.expect_close` waits for the server to close with a given code.

Every failed expectation raises :class:`~conformance.failures.ConformanceFailure` naming
the requirement at stake, what was sent, what was expected and what came back.
"""

from __future__ import annotations

import contextlib
import itertools
import socket
import threading
import time
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import orjson
from websockets.exceptions import ConnectionClosed, InvalidStatus, WebSocketException
from websockets.sync.client import ClientConnection, connect
from websockets.typing import Origin, Subprotocol

from conformance import spec
from conformance.failures import ConformanceFailure
from conformance.frames import ConnectionState, FrameChecker
from conformance.redact import redact
from conformance.target import Timeouts
from conformance.transcript import Transcript, clip

Message = dict[str, Any]
Matcher = str | Collection[str] | Callable[[Message], bool]


class _Any:
    def __repr__(self) -> str:
        return "ANY"


#: ``correlation_id=ANY`` (the default) means the expectation does not look at correlation.
ANY: Any = _Any()

SUBPROTOCOL = Subprotocol(spec.SUBPROTOCOL)

#: Server messages that answer a client's message; others lack correlation_id by nature.
ANSWERS = spec.answer_types()


def now_rfc3339() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def json_text(value: Any) -> str:
    """A value as JSON, for failure texts (``null``, ``true``, never Python's spelling)."""
    try:
        return orjson.dumps(value).decode()
    except TypeError:
        return str(value)


def with_article(noun: str) -> str:
    """``an error``, ``a pong``: failure texts are read by people."""
    return f"{'an' if noun[:1].lower() in 'aeiou' else 'a'} {noun}"


def error_code_text(code: Any) -> str:
    return "an error without code" if code is None else f"an error with code {json_text(code)}"


def correlation_of(message: Message) -> Any:
    metadata = message.get("metadata")
    return metadata.get("correlation_id") if isinstance(metadata, dict) else None


def summarize(message: Message | None, raw: str | bytes = "") -> str:
    """A one-line description of a server message for failure texts."""
    if message is None:
        shown = raw if isinstance(raw, str) else f"<{len(raw)} binary bytes>"
        return f"a frame that is not a REP message: {clip(redact(shown), 200)}"
    payload = message.get("payload")
    parts = [f"{message.get('type')} id={json_text(message.get('id'))}"]
    if message.get("type") == "error" and isinstance(payload, dict):
        code = payload.get("code")
        parts.append(f"code={json_text(code)}" if code is not None else "without code")
    correlation = correlation_of(message)
    if correlation is not None:
        parts.append(f"correlation_id={json_text(correlation)}")
    elif message.get("type") in ANSWERS:
        parts.append("without correlation_id")
    parts.append(f"payload={clip(redact(orjson.dumps(payload).decode()), 240)}")
    return " ".join(parts)


@dataclass
class Inbound:
    at: float
    raw: str | bytes
    message: Message | None
    consumed: bool = False


@dataclass(frozen=True)
class CloseInfo:
    """How the connection ended; ``code`` is None when no close frame arrived (1006)."""

    code: int | None
    reason: str
    at: float

    def describe(self) -> str:
        if self.code is None:
            return f"the connection dropped without a close frame at {self.at:.2f} s"
        reason = f" ({self.reason!r})" if self.reason else ""
        return f"the server closed the connection with code {self.code}{reason} at {self.at:.2f} s"


@dataclass(frozen=True)
class Handshake:
    """The HTTP side of an opening handshake: 101 with a connection, or a refusal."""

    status: int
    body: str
    connection: ClientConnection | None
    subprotocol: str | None = None


def with_query(url: str, **params: str) -> str:
    parts = urlsplit(url)
    query = [*parse_qsl(parts.query), *params.items()]
    return urlunsplit(parts._replace(query=urlencode(query)))


def open_websocket(
    url: str,
    *,
    transcript: Transcript,
    channel: str,
    token: str | None = None,
    via: str = "header",
    placements: Sequence[tuple[str, str]] = (),
    origin: str | None = None,
    subprotocols: Sequence[str] = (SUBPROTOCOL,),
    headers: Iterable[tuple[str, str]] = (),
    timeout: float = 5.0,
) -> Handshake:
    """Open a WebSocket with tokens placed where the server must look for them (AUTH-002).

    ``token``/``via`` place one token; ``placements`` (``(via, token)`` pairs) place
    several at once, to check which one the server uses.
    """
    extra = list(headers)
    chosen = [(via, token)] if token is not None else []
    chosen += list(placements)
    for where, value in chosen:
        if where == "header":
            extra.append(("Authorization", f"Bearer {value}"))
        elif where == "query":
            url = with_query(url, **{spec.TOKEN_PARAMETER: value})
        elif where == "cookie":
            extra.append(("Cookie", f"{spec.TOKEN_PARAMETER}={value}"))
        else:
            raise ValueError(f"unknown token placement {where!r}")
    how = ("token in " + " and ".join(w for w, _ in chosen)) if chosen else "no token"
    described = f"GET {urlsplit(url).path or '/'} ({how}"
    described += f", Origin {origin}" if origin else ""
    described += f", subprotocols {', '.join(subprotocols)})" if subprotocols else ")"
    transcript.add(channel, "sent", "handshake", described)
    try:
        ws = connect(
            url,
            origin=Origin(origin) if origin else None,
            subprotocols=[Subprotocol(s) for s in subprotocols] or None,
            additional_headers=extra,
            compression=None,
            open_timeout=timeout,
            ping_interval=None,
            close_timeout=1.0,
            max_size=None,
            proxy=None,
            legacy=True,
        )
    except InvalidStatus as exc:
        body = bytes(exc.response.body).decode("utf-8", "replace")
        transcript.add(
            channel, "received", "handshake", f"HTTP {exc.response.status_code} {clip(body, 300)}"
        )
        return Handshake(exc.response.status_code, body, None)
    except (WebSocketException, OSError, TimeoutError) as exc:  # incl. a close mid-handshake
        transcript.add(channel, "received", "handshake", f"failed: {exc!r}")
        raise ConnectionError(redact(f"could not open a WebSocket to {url}: {exc}")) from exc
    transcript.add(
        channel, "received", "handshake", f"HTTP 101, subprotocol {ws.subprotocol or 'none'}"
    )
    return Handshake(101, "", ws, ws.subprotocol)


class Client:
    """One open connection of a check, with its inbox and expectations."""

    def __init__(
        self,
        ws: ClientConnection,
        *,
        label: str,
        user_id: str,
        transcript: Transcript,
        timeouts: Timeouts,
        default_requirements: Sequence[str],
        protocol_version: str,
    ) -> None:
        self.ws = ws
        self.label = label
        self.user_id = user_id
        self.transcript = transcript
        self.timeouts = timeouts
        self.default_requirements = tuple(default_requirements)
        self.protocol_version = protocol_version
        self.welcome: Message = {}
        self._client_id: str | None = None
        self.closed: CloseInfo | None = None
        self.problems: list[tuple[tuple[str, ...], str]] = []
        self._state = ConnectionState()
        self._checker = FrameChecker()
        self._inbox: list[Inbound] = []
        self._sent: dict[str, Message] = {}
        self._ids = itertools.count(1)
        self._cond = threading.Condition()
        self._reader = threading.Thread(target=self._read, name=f"rep-{label}", daemon=True)
        self._reader.start()

    @property
    def client_id(self) -> str:
        """The welcome's clientId; a check that needs it is blocked by AUTH-010 without it."""
        if not self._client_id:
            raise self.failure(
                "AUTH-010",
                expected="the welcome to carry the connection's clientId",
                received=f"clientId = {json_text(self.welcome.get('payload', {}).get('clientId'))}"
                if isinstance(self.welcome.get("payload"), dict)
                else "a welcome without a payload object",
            )
        return self._client_id

    @client_id.setter
    def client_id(self, value: str | None) -> None:
        self._client_id = value or None

    # -- receiving ---------------------------------------------------------------------

    def _read(self) -> None:
        while True:
            try:
                data = self.ws.recv()
            except ConnectionClosed as exc:
                code = exc.rcvd.code if exc.rcvd is not None else None
                reason = exc.rcvd.reason if exc.rcvd is not None else ""
                self._on_close(code, reason)
                return
            except Exception as exc:  # a dead socket surfaces as various errors
                self._on_close(None, repr(exc))
                return
            at = self.transcript.now()
            message, problems = self._checker.check(data, self._state)
            texts = tuple(f"{', '.join(p.requirement_ids)}: {p.text}" for p in problems)
            shown = data if isinstance(data, str) else f"<binary {len(data)} bytes>"
            self.transcript.add(
                self.label,
                "received",
                "text" if isinstance(data, str) else "binary",
                shown,
                texts,
                at=at,
            )
            with self._cond:
                self.problems.extend((p.requirement_ids, p.text) for p in problems)
                self._inbox.append(Inbound(at, data, message))
                self._cond.notify_all()

    def _on_close(self, code: int | None, reason: str) -> None:
        at = self.transcript.now()
        info = CloseInfo(code, reason, at)
        self.transcript.add(self.label, "received", "close", info.describe(), at=at)
        with self._cond:
            self.closed = info
            self._cond.notify_all()

    def is_open(self) -> bool:
        """False once the connection ended (server close, drop, or our own close)."""
        return self.closed is None

    # -- sending -----------------------------------------------------------------------

    def next_id(self) -> str:
        return f"{self.label}-{next(self._ids)}"

    def envelope(
        self,
        type_: str,
        payload: dict[str, Any] | None = None,
        *,
        id: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> Message:
        """A valid client envelope; ``metadata=None`` gives version and source client."""
        return {
            "id": id or self.next_id(),
            "type": type_,
            "timestamp": now_rfc3339(),
            "payload": payload if payload is not None else {},
            "metadata": metadata
            if metadata is not None
            else {"version": self.protocol_version, "source": "client"},
        }

    def send(
        self,
        type_: str,
        payload: dict[str, Any] | None = None,
        *,
        id: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> str:
        """Send one envelope and return its id (the correlation id of its answer)."""
        message = self.envelope(type_, payload, id=id, metadata=metadata)
        self.send_json(message)
        return str(message["id"])

    def send_json(self, message: Any) -> None:
        """Send any JSON value as one text frame, valid envelope or not."""
        self._remember(message)
        self.send_raw(orjson.dumps(message).decode())

    def _remember(self, message: Any) -> None:
        if isinstance(message, dict) and isinstance(message.get("id"), str):
            self._sent[message["id"]] = message

    def send_raw(self, data: str | bytes, fragments: int = 1) -> None:
        """Send a text (``str``) or binary (``bytes``) message, optionally fragmented."""
        kind = "text" if isinstance(data, str) else "binary"
        if isinstance(data, str) and data.startswith("{"):
            with contextlib.suppress(orjson.JSONDecodeError):
                self._remember(orjson.loads(data))
        shown = data if isinstance(data, str) else f"<binary {len(data)} bytes>"
        note = f" [{fragments} fragments]" if fragments > 1 else ""
        self.transcript.add(self.label, "sent", kind, shown + note)
        try:
            if fragments > 1:
                size = -(-len(data) // fragments)
                self.ws.send([data[i : i + size] for i in range(0, len(data), size)])
            else:
                self.ws.send(data)
        except ConnectionClosed as exc:
            with self._cond:
                self._cond.wait_for(lambda: self.closed is not None, timeout=1.0)
            closed = self.closed.describe() if self.closed else str(exc)
            raise self.failure(
                self.default_requirements,
                sent=f"a {kind} frame",
                expected="the connection to stay open",
                received=closed,
            ) from exc

    def sent(self, message_id: str) -> Message | None:
        return self._sent.get(message_id)

    def describe_sent(self, message_id: Any) -> str | None:
        if not isinstance(message_id, str):
            return None
        message = self._sent.get(message_id)
        if message is None:
            return f"id={json_text(message_id)}"
        return f"{message.get('type')} id={json_text(message_id)} on {self.label}"

    # -- expecting ---------------------------------------------------------------------

    def failure(
        self,
        requirement_ids: Iterable[str] | str | None,
        *,
        expected: str,
        received: str,
        sent: str | None = None,
    ) -> ConformanceFailure:
        ids = self._ids_of(requirement_ids)
        return ConformanceFailure(
            ids, expected=expected, received=received, sent=sent, transcript=self.transcript
        )

    def _ids_of(self, requirement_ids: Iterable[str] | str | None) -> tuple[str, ...]:
        if requirement_ids is None:
            return self.default_requirements
        if isinstance(requirement_ids, str):
            return (requirement_ids,)
        return tuple(requirement_ids)

    @staticmethod
    def _predicate(
        match: Matcher, correlation_id: Any, where: Callable[[Message], bool] | None = None
    ) -> Callable[[Message], bool]:
        if isinstance(match, str):
            types: Collection[str] | None = (match,)
            custom: Callable[[Message], bool] | None = None
        elif callable(match):
            types, custom = None, match
        else:
            types, custom = match, None

        def predicate(message: Message) -> bool:
            if types is not None and message.get("type") not in types:
                return False
            if correlation_id is not ANY and correlation_of(message) != correlation_id:
                return False
            if where is not None and not where(message):
                return False
            return custom is None or bool(custom(message))

        return predicate

    def _unconsumed(self, since: float = 0.0) -> list[Inbound]:
        return [i for i in self._inbox if not i.consumed and i.at >= since]

    def _wait(
        self,
        predicate: Callable[[Message], bool],
        within: float,
        contradicts: Callable[[Message], bool] | None = None,
        since: float = 0.0,
    ) -> Inbound | None:
        deadline = time.monotonic() + within
        with self._cond:
            while True:
                for item in self._inbox:
                    if item.consumed or item.message is None or item.at < since:
                        continue
                    if predicate(item.message) or (contradicts and contradicts(item.message)):
                        return item
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self.closed is not None:
                    return None
                self._cond.wait(remaining)

    def _describe_instead(self, since: float) -> str:
        with self._cond:
            others = [
                i
                for i in self._unconsumed(since)
                if i.message is None or i.message.get("type") != "heartbeat"
            ]
            closed = self.closed
        parts = [summarize(i.message, i.raw) for i in others[:5]]
        if len(others) > 5:
            parts.append(f"and {len(others) - 5} more")
        text = "received instead: " + "; ".join(parts) if parts else "received nothing"
        if closed is not None:
            text += f"; {closed.describe()}"
        return text

    def expect(
        self,
        match: Matcher,
        *,
        correlation_id: Any = ANY,
        where: Callable[[Message], bool] | None = None,
        within: float | None = None,
        requirement: Iterable[str] | str | None = None,
        description: str | None = None,
    ) -> Message:
        """Wait for a matching unconsumed message, consume it and return it.

        With a ``correlation_id``, an ``error`` correlated to the same message fails the
        expectation at once: the server has answered, differently.
        """
        within = self.timeouts.answer if within is None else within
        predicate = self._predicate(match, correlation_id, where)
        expecting_error = match == "error"

        def contradicts(message: Message) -> bool:
            if correlation_id is ANY or correlation_of(message) != correlation_id:
                return False
            return (message.get("type") == "error") != expecting_error

        started = self.transcript.now()
        found = self._wait(predicate, within, contradicts)
        if found is not None and found.message is not None and predicate(found.message):
            with self._cond:
                found.consumed = True
            return found.message
        what = description or self._describe_match(match, correlation_id)
        if found is not None:
            received = f"received instead: {summarize(found.message, found.raw)}"
        else:
            received = self._describe_instead(started)
        raise self.failure(
            requirement,
            sent=self.describe_sent(correlation_id),
            expected=f"{what} within {within:g} s",
            received=received,
        )

    @staticmethod
    def _describe_match(match: Matcher, correlation_id: Any) -> str:
        if isinstance(match, str):
            what = with_article(match)
        elif callable(match):
            what = "a matching message"
        else:
            what = "one of " + ", ".join(sorted(match))
        if correlation_id is not ANY:
            what += f" with metadata.correlation_id = {json_text(correlation_id)}"
        return what

    def expect_error(
        self,
        code: str,
        *,
        correlation_id: Any = ANY,
        within: float | None = None,
        requirement: Iterable[str] | str | None = None,
    ) -> Message:
        """Wait for an ``error`` (correlated when asked) and check its code."""
        error = self.expect(
            "error",
            correlation_id=correlation_id,
            within=within,
            requirement=requirement,
            description=f"an error with code {json_text(code)}"
            + (
                f" and metadata.correlation_id = {json_text(correlation_id)}"
                if correlation_id is not ANY
                else ""
            ),
        )
        got = error["payload"].get("code") if isinstance(error.get("payload"), dict) else None
        if got != code:
            raise self.failure(
                requirement,
                sent=self.describe_sent(correlation_id),
                expected=f"an error with code {json_text(code)}",
                received=f"received {error_code_text(got)}: {summarize(error)}",
            )
        return error

    def expect_refusal(
        self,
        code: str,
        *,
        of: str | None,
        requirement: Iterable[str] | str,
        within: float | None = None,
        exactly_one: bool = True,
        wrong_code: Iterable[str] | str | None = None,
    ) -> Message:
        """The one error a refused message gets (ERR-001), correlated to it (ERR-003).

        ``of`` is the refused message's id when it had a valid one. ``requirement`` names
        what a missing refusal breaks, ``wrong_code`` (default: the same) what an error of
        another code breaks (e.g. ERR-008 for invalid_envelope). A non-error answer
        correlated to ``of`` fails at once: the server processed what it had to refuse.
        With ``exactly_one``, a ping barrier proves no second error followed.
        """
        within = self.timeouts.answer if within is None else within
        sent = self.describe_sent(of) if of is not None else None

        def predicate(message: Message) -> bool:
            return message.get("type") == "error" and correlation_of(message) in (of, None)

        def contradicts(message: Message) -> bool:
            return of is not None and correlation_of(message) == of

        started = self.transcript.now()
        found = self._wait(predicate, within, contradicts)
        expected = f"an error with code {json_text(code)}" + (
            f" and metadata.correlation_id = {json_text(of)}" if of is not None else ""
        )
        if found is None or found.message is None:
            silent = ["ERR-001", *self._ids_of(requirement)]
            raise self.failure(
                silent,
                sent=sent,
                expected=f"{expected} within {within:g} s",
                received=self._describe_instead(started),
            )
        with self._cond:
            found.consumed = True
        error = found.message
        if error.get("type") != "error":
            raise self.failure(
                requirement,
                sent=sent,
                expected=expected,
                received=f"the server processed it and answered {summarize(error)}",
            )
        if of is not None and correlation_of(error) != of:
            raise self.failure(
                "ERR-003",
                sent=sent,
                expected=expected,
                received=f"received an error without that correlation_id: {summarize(error)}",
            )
        got = error["payload"].get("code") if isinstance(error.get("payload"), dict) else None
        if got != code:
            raise self.failure(
                requirement if wrong_code is None else wrong_code,
                sent=sent,
                expected=expected,
                received=f"received {error_code_text(got)}: {summarize(error)}",
            )
        if exactly_one:
            self.sync()
            self.expect_none(
                "error",
                where=lambda m: correlation_of(m) in (of, None),
                within=0.0,
                requirement="ERR-001",
                description=f"second error about {sent or 'the refused frame'}",
            )
        return error

    def expect_none(
        self,
        match: Matcher,
        *,
        correlation_id: Any = ANY,
        where: Callable[[Message], bool] | None = None,
        within: float | None = None,
        requirement: Iterable[str] | str | None = None,
        description: str | None = None,
        since: float = 0.0,
    ) -> None:
        """Fail if a matching message is (or within the window becomes) unconsumed.

        ``since`` (transcript time): what arrived before it is not counted, since what it
        asks about ("a message caused by the refused one") cannot come before its cause; a
        leftover of an earlier step is another requirement's finding, not this one's."""
        within = self.timeouts.silence if within is None else within
        predicate = self._predicate(match, correlation_id, where)
        found = self._wait(predicate, within, since=since)
        if found is not None:
            what = description or self._describe_match(match, correlation_id)
            raise self.failure(
                requirement,
                sent=self.describe_sent(correlation_id),
                expected=f"no {what.removeprefix('a ').removeprefix('an ')} on {self.label}",
                received=f"received {summarize(found.message, found.raw)}",
            )

    def expect_close(
        self,
        codes: int | Collection[int],
        *,
        within: float | None = None,
        requirement: Iterable[str] | str | None = None,
        sent: str | None = None,
    ) -> CloseInfo:
        """Wait for the server to close the connection with one of ``codes``."""
        within = self.timeouts.answer if within is None else within
        wanted = {codes} if isinstance(codes, int) else set(codes)
        shown = " or ".join(str(c) for c in sorted(wanted))
        with self._cond:
            self._cond.wait_for(lambda: self.closed is not None, timeout=within)
            closed = self.closed
        if closed is None:
            raise self.failure(
                requirement,
                sent=sent,
                expected=f"the server to close the connection with code {shown} "
                f"within {within:g} s",
                received="the connection stayed open",
            )
        if closed.code not in wanted:
            raise self.failure(
                requirement,
                sent=sent,
                expected=f"a close with code {shown}",
                received=closed.describe(),
            )
        return closed

    def expect_open(self, requirement: Iterable[str] | str | None = None) -> None:
        """Prove the connection still serves: a ping is answered by its pong."""
        ping = self.send("ping")
        self.expect("pong", correlation_id=ping, requirement=requirement)

    def keepalive(self, period: float, until: float) -> None:
        """Ping every ``period`` seconds until transcript time ``until`` or a close.

        Used while waiting on a server timer, so the heartbeat timeout does not interfere.
        A close that races a ping ends the loop; the caller then inspects ``closed``.
        """
        while self.is_open() and self.transcript.now() < until:
            try:
                self.send("ping")
            except ConformanceFailure:
                if self.is_open():
                    raise
                return
            with self._cond:
                self._cond.wait_for(
                    lambda: self.closed is not None,
                    timeout=max(0.0, min(period, until - self.transcript.now())),
                )

    def sync(self) -> None:
        """Barrier: once the pong arrives, the server has processed what was sent before."""
        ping = self.send("ping")
        self.expect("pong", correlation_id=ping)

    def take_all(
        self,
        match: Matcher,
        correlation_id: Any = ANY,
        where: Callable[[Message], bool] | None = None,
    ) -> list[Message]:
        """Consume and return every unconsumed message that matches, in arrival order."""
        predicate = self._predicate(match, correlation_id, where)
        with self._cond:
            found = [
                i
                for i in self._inbox
                if not i.consumed and i.message is not None and predicate(i.message)
            ]
            for item in found:
                item.consumed = True
        return [i.message for i in found if i.message is not None]

    def received(self) -> list[tuple[float, Message]]:
        """Every decoded message so far with its arrival time, consumed or not."""
        with self._cond:
            return [(i.at, i.message) for i in self._inbox if i.message is not None]

    # -- closing -----------------------------------------------------------------------

    def close(self, code: int = 1000) -> None:
        if self.closed is None:
            self.transcript.add(self.label, "sent", "close", f"close frame, code {code}")
        with contextlib.suppress(Exception):
            self.ws.close(code)
        self._reader.join(timeout=2.0)

    def drop(self) -> None:
        """End the connection abruptly, without a close frame (a crashed client)."""
        self.transcript.add(self.label, "sent", "close", "TCP connection dropped, no close frame")
        with contextlib.suppress(OSError):
            self.ws.socket.shutdown(socket.SHUT_RDWR)
        self.ws.close_socket()  # wakes websockets' reader, hence ours, without a close frame
        self._reader.join(timeout=2.0)


class SilentPeer:
    """A WebSocket client that never answers the server's close frame (LIFE-009).

    It speaks through websockets' sans-I/O protocol on a socket of its own, so the close
    reply the protocol prepares is simply never written: the closing handshake stays
    incomplete until the server cuts the connection.
    """

    def __init__(
        self, url: str, token: str, *, label: str, transcript: Transcript, protocol_version: str
    ) -> None:
        from websockets.client import ClientProtocol
        from websockets.uri import parse_uri

        self.label = label
        self.transcript = transcript
        self.protocol_version = protocol_version
        uri = parse_uri(url)
        self._protocol = ClientProtocol(uri, subprotocols=[Subprotocol(SUBPROTOCOL)])
        request = self._protocol.connect()
        request.headers["Authorization"] = f"Bearer {token}"
        self._protocol.send_request(request)
        self._socket = socket.create_connection((uri.host, uri.port), timeout=5.0)
        if uri.secure:
            import ssl

            context = ssl.create_default_context()
            self._socket = context.wrap_socket(self._socket, server_hostname=uri.host)
        self._ids = itertools.count(1)
        self._texts: list[Message] = []
        self._eof = False
        self._flush()
        transcript.add(label, "sent", "handshake", f"GET {uri.path} (token in header)")

    def _flush(self) -> None:
        self._socket.sendall(b"".join(self._protocol.data_to_send()))

    def send(self, type_: str, payload: dict[str, Any]) -> str:
        """Send one envelope; the id it carries."""
        message = {
            "id": f"{self.label}-{next(self._ids)}",
            "type": type_,
            "timestamp": now_rfc3339(),
            "payload": payload,
            "metadata": {"version": self.protocol_version, "source": "client"},
        }
        text = orjson.dumps(message)
        self.transcript.add(self.label, "sent", "text", text.decode())
        self._protocol.send_text(text)
        self._flush()
        return str(message["id"])

    def expect(self, where: Callable[[Message], bool], timeout: float) -> Message | None:
        """The first text message ``where`` selects, reading for at most ``timeout`` s."""
        deadline = time.monotonic() + timeout
        while True:
            for index, message in enumerate(self._texts):
                if where(message):
                    return self._texts.pop(index)
            left = deadline - time.monotonic()
            if left <= 0 or self._eof:
                return None
            self._read(left)

    def _read(self, timeout: float) -> None:
        self._socket.settimeout(timeout)
        try:
            data = self._socket.recv(65536)
        except TimeoutError:
            return
        except OSError:
            data = b""
        if data:
            self._protocol.receive_data(data)
        else:
            self._eof = True
            self._protocol.receive_eof()
        from websockets.frames import Frame, Opcode

        for event in self._protocol.events_received():
            if isinstance(event, Frame) and event.opcode is Opcode.TEXT:
                text = bytes(event.data).decode("utf-8", "replace")
                with contextlib.suppress(orjson.JSONDecodeError):
                    self._texts.append(orjson.loads(text))
                self.transcript.add(self.label, "received", "text", clip(text, 300))
        # Whatever the protocol prepared (its close reply above all) is never written.
        self._protocol.data_to_send()

    def drop(self) -> None:
        with contextlib.suppress(OSError):
            self._socket.close()
