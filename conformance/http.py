"""Plain HTTP requests to the server under test, recorded in the check's transcript.

A request is described by its method, path, query and body, redacted
(:mod:`conformance.redact`); its headers, where the token goes, are not shown.
"""

from __future__ import annotations

import http.client
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import orjson

from conformance.redact import redact
from conformance.transcript import Transcript, clip


@dataclass(frozen=True)
class HttpResponse:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        """The decoded body, or None when it is not JSON."""
        try:
            return orjson.loads(self.body)
        except orjson.JSONDecodeError:
            return None

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")


class HttpClient:
    def __init__(self, base_url: str, transcript: Transcript, timeout: float) -> None:
        self.base_url = base_url.rstrip("/")
        self.transcript = transcript
        self.timeout = timeout

    def request(
        self,
        method: str,
        path: str,
        *,
        body: bytes | str | None = None,
        json: Any = None,
        token: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> HttpResponse:
        """One request on a fresh connection; network failures propagate as OSError."""
        url = urlsplit(self.base_url + path)
        send_headers = dict(headers or {})
        if json is not None:
            body = orjson.dumps(json)
            send_headers.setdefault("Content-Type", "application/json")
        if token is not None:
            send_headers["Authorization"] = f"Bearer {token}"
        payload = body.encode() if isinstance(body, str) else body
        shown = f"{method} {url.path}" + (f"?{redact(url.query)}" if url.query else "")
        if payload:
            shown += " " + clip(redact(payload.decode("utf-8", "replace")), 500)
        self.transcript.add("http", "sent", "request", shown)
        factory = (
            http.client.HTTPSConnection if url.scheme == "https" else http.client.HTTPConnection
        )
        connection = factory(url.netloc, timeout=self.timeout)
        try:
            target = url.path + (f"?{url.query}" if url.query else "")
            connection.request(method, target, body=payload, headers=send_headers)
            response = connection.getresponse()
            data = response.read()
            found = HttpResponse(
                response.status, {k.lower(): v for k, v in response.getheaders()}, data
            )
        finally:
            connection.close()
        self.transcript.add(
            "http",
            "received",
            "response",
            f"HTTP {found.status} {clip(found.text, 500)}",
        )
        return found

    def get(self, path: str, **kwargs: Any) -> HttpResponse:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> HttpResponse:
        return self.request("POST", path, **kwargs)
