"""No credential reaches an artifact: redaction rules, the paths into reports, a real run.

Reports, replay files and CI summaries are shared; the tokens the kit mints are valid, so
they must never be in them. Unit tests pin the rules of :mod:`conformance.redact` and the
places that apply them; the network tests run the kit and read every file it wrote.
"""

from __future__ import annotations

import json
import re
import secrets
import select
import shlex
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import pytest
import yaml

from conformance.baseline import Baseline
from conformance.client import open_websocket
from conformance.failures import ConformanceFailure
from conformance.redact import MASK, redact, redact_data, remember
from conformance.reference import fixtures, server_config
from conformance.reports import build_report, write_reports
from conformance.results import CheckResult, judge, requirement_results
from conformance.target import CommandTokens, JwtTokens, parse_target
from conformance.tokens import (
    CommandTokenSource,
    JwtTokenSource,
    hmac_token,
    standard_claims,
    tampered,
    unsigned_token,
)
from conformance.transcript import Transcript
from reference_server.config import parse_config
from reference_server.testing import running_server
from rep_spec import requirements
from tests.conformance_variants.kit import run_kit, write_target

#: What a JWT looks like to someone scanning an artifact: header and payload segments.
JWT_SHAPED = re.compile(r"eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")


def a_token(**claims: Any) -> str:
    return hmac_token({"sub": "alice", **claims}, "a-signing-secret-for-tests", "HS256")


def secret_free(text: str, *secrets_: str) -> bool:
    return JWT_SHAPED.search(text) is None and not any(s in text for s in secrets_ if s)


# -- the rules ---------------------------------------------------------------------------


def test_a_jwt_is_masked_keeping_only_the_end_of_its_signature() -> None:
    token = a_token()
    signature = token.split(".")[2]
    shown = redact(f"sent {token} to the server")
    assert shown == f"sent {MASK} JWT …{signature[-4:]}] to the server"
    assert token.split(".")[1] not in shown


def test_an_alg_none_token_with_an_empty_signature_is_masked_without_its_payload() -> None:
    token = unsigned_token({"sub": "mallory", "roles": ["admin"]})
    assert token.endswith(".")
    shown = redact(f"a token with alg 'none': {token}")
    assert shown == f"a token with alg 'none': {MASK} JWT, unsigned]"
    assert redact(".".join(token.split(".")[:2])) == f"{MASK} JWT, unsigned]"


def test_tampered_and_bogus_signature_tokens_are_masked() -> None:
    for token in (tampered(a_token()), unsigned_token({"sub": "x"}, "none", "c2lnbmF0dXJl")):
        assert secret_free(redact(f"?token={token}"), token)


@pytest.mark.parametrize(
    "text",
    [
        "Authorization: Bearer x",
        "{'Authorization': 'Bearer x'}",
        "('Authorization', 'Bearer x')",
        "authorization=Bearer x",
    ],
)
def test_the_value_of_an_authorization_header_is_masked_however_short(text: str) -> None:
    shown = redact(text)
    assert shown.endswith(("Bearer [redacted token]", "Bearer [redacted token]'}", "]')")), shown
    assert "Bearer x" not in shown


def test_bearer_values_outside_a_header_are_masked_when_they_look_like_credentials() -> None:
    assert redact("Bearer abc.def-123") == "Bearer [redacted token]"
    assert redact("Basic dXNlcjpwYXNzd29yZA==") == "Basic [redacted token …ZA==]"
    prose = "the Authorization header (Bearer scheme), a Bearer token, basic checks"
    assert redact(prose) is prose


def test_a_token_parameter_is_masked_and_the_rest_of_the_query_kept() -> None:
    shown = redact("ws://127.0.0.1:8765/ws?token=opaque-value-1234567890&a=b")
    assert shown == f"ws://127.0.0.1:8765/ws?token={MASK} token …7890]&a=b"
    assert redact("GET /events?channels=x&access_token=abc") == (
        f"GET /events?channels=x&access_token={MASK} token]"
    )
    assert redact("token=None, token=''") == "token=None, token=''"


def test_cookie_headers_keep_attributes_and_preferences_but_not_credentials() -> None:
    token = a_token()
    shown = redact(f"Cookie: token={token}; theme=dark; tracking=0123456789abcdef")
    assert shown.startswith(f"Cookie: token={MASK} JWT …")
    assert "theme=dark" in shown and "0123456789abcdef" not in shown
    shown = redact("Set-Cookie: sid=x1; Path=/; HttpOnly; Max-Age=3600")
    assert shown == f"Set-Cookie: sid={MASK} token]; Path=/; HttpOnly; Max-Age=3600"
    prose = "No Authorization header, no token parameter, no cookie: 401, no upgrade."
    assert redact(prose) is prose


def test_a_token_key_in_json_is_masked() -> None:
    assert redact('{"token": "opaque-0123456789abc", "room": "r1"}') == (
        f'{{"token": "{MASK} token …9abc]", "room": "r1"}}'
    )


def test_a_token_printed_by_the_token_command_is_registered_and_masked(tmp_path: Path) -> None:
    opaque = f"opaque+{secrets.token_hex(12)}/=="
    script = tmp_path / "mint.py"
    script.write_text(f"print('minting for', __import__('sys').argv[1])\nprint({opaque!r})\n")
    command = f"{shlex.quote(sys.executable)} {shlex.quote(str(script))} {{user}}"
    token = CommandTokenSource(CommandTokens(command)).mint("alice", ["user"])
    assert token == opaque
    shown = redact(f"handshake with {opaque}; in a URL: /x/{quote(opaque, safe='')}")
    tail = opaque[-4:]
    assert shown == f"handshake with {MASK} token …{tail}]; in a URL: /x/{MASK} token …{tail}]"


def test_the_jwt_secret_is_registered_when_the_target_is_loaded() -> None:
    secret = f"target-secret-{secrets.token_hex(8)}"
    target = parse_target({"ws_url": "ws://127.0.0.1:9/ws", "tokens": {"jwt": {"secret": secret}}})
    assert isinstance(target.tokens, JwtTokens)
    assert secret not in repr(target), "the secret must not be in reprs (traceback locals)"
    assert redact(f"secret={secret}") == f"secret={MASK} JWT secret]"
    assert redact(json.dumps({"s": f'{secret}"quoted'})) == json.dumps(
        {"s": f"{MASK} JWT secret]" + '"quoted'}
    )


def test_the_jwt_source_registers_its_secret_and_tokens() -> None:
    secret = f"source-secret-{secrets.token_hex(8)}"
    source = JwtTokenSource(JwtTokens(secret, "HS256", ("HS256",)))
    token = source.mint("bob", ["user"])
    expired = source.sign(standard_claims("bob", ["user"], [], -60))
    assert secret_free(redact(f"{secret} {token} {expired}"), secret, token, expired)


def test_registered_secrets_are_replaced_longest_first() -> None:
    short = f"part-{secrets.token_hex(4)}"
    long = f"{short}-and-more"
    remember(short, "short secret")
    remember(long, "long secret")
    assert redact(f"{long} / {short}") == f"{MASK} long secret] / {MASK} short secret]"


def test_short_strings_are_not_registered() -> None:
    remember("user")
    remember("secret7", "JWT secret")
    text = "a user with a secret7 and user rights"
    assert redact(text) is text


def test_text_without_credentials_is_returned_unchanged() -> None:
    text = '{"type":"message","id":"m-1","payload":{"text":"hello"}}'
    assert redact(text) is text
    assert redact("") == ""
    for requirement in requirements():
        assert redact(requirement.text) == requirement.text, requirement.id


def test_redacting_twice_changes_nothing() -> None:
    token = a_token()
    text = f"Authorization: Bearer {token}; Cookie: token={token}; ?token={token}&x=1 {token}"
    once = redact(text)
    assert redact(once) == once
    assert secret_free(once, token)


def test_masks_are_inert_in_html_markdown_and_json() -> None:
    shown = redact(f"?token={a_token()}")
    assert not set(shown) & set("<>&\"'`|")
    assert json.loads(json.dumps(shown)) == shown


def test_redact_data_walks_dicts_lists_and_tuples_without_changing_the_input() -> None:
    token = a_token()
    data = {
        "message": f"sent {token}",
        "transcript": [{"text": f"?token={token}", "at": 0.5}, ("kept", token)],
        "count": 3,
        "flag": None,
    }
    clean = redact_data(data)
    assert data["message"] == f"sent {token}", "the input is not modified"
    assert secret_free(json.dumps(clean), token)
    assert clean["count"] == 3 and clean["flag"] is None
    assert clean["transcript"][0]["at"] == 0.5
    assert isinstance(clean["transcript"][1], tuple) and clean["transcript"][1][0] == "kept"
    untouched = {"a": ["b", {"c": 1}]}
    assert redact_data(untouched) is untouched


# -- the paths into artifacts ------------------------------------------------------------


def test_transcript_entries_are_redacted() -> None:
    token = a_token()
    transcript = Transcript()
    transcript.add("alice#1", "sent", "handshake", f"GET /ws?token={token}")
    transcript.add(
        "alice#1", "received", "text", f'{{"echo": "{token}"}}', (f"ENV-013: saw {token}",)
    )
    transcript.note(f"Authorization: Bearer {token}")
    assert secret_free(transcript.render(), token)
    assert secret_free(json.dumps(transcript.to_dicts()), token)


def test_a_long_frame_is_redacted_before_it_is_clipped() -> None:
    token = a_token(pad="x" * 700)
    transcript = Transcript()
    entry = transcript.add("bob#1", "received", "text", f"{'y' * 590} {token}")
    assert secret_free(entry.text, token) and MASK in entry.text


def test_conformance_failures_carry_no_token() -> None:
    token = a_token()
    failure = ConformanceFailure(
        ["AUTH-002"],
        sent=f"a handshake to ws://h/ws?token={token}",
        expected=f"the user of Authorization: Bearer {token}",
        received=f"a welcome for the token {token}",
    )
    failure.absorb(ConformanceFailure(["ENV-013"], expected="x", received=f"echo {token}"))
    failure.replay = f"rep-conformance run --check x  # {token}"
    for text in (failure.summary(), str(failure), failure.args[0], failure.received):
        assert secret_free(text, token), text
    assert "AUTH-002" in failure.summary() and "ENV-013" in failure.summary()


@pytest.mark.network
def test_a_refused_connection_names_the_url_without_its_token() -> None:
    token = a_token()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    transcript = Transcript()
    with pytest.raises(ConnectionError) as refused:
        open_websocket(
            f"ws://127.0.0.1:{port}/ws",
            transcript=transcript,
            channel="alice#1",
            placements=[("query", token), ("header", token), ("cookie", token)],
            timeout=2.0,
        )
    message = str(refused.value)
    assert f"ws://127.0.0.1:{port}/ws?token={MASK} JWT" in message, message
    assert secret_free(message, token)
    assert secret_free(transcript.render(), token)


def report_with_a_token(token: str, secret: str) -> dict[str, Any]:
    checks = [
        CheckResult(
            check_id="test_handshake.py::test_the_first_token_present_is_used[header-over-query]",
            nodeid="checks/test_handshake.py::test_the_first_token_present_is_used",
            requirement_ids=("AUTH-002",),
            outcome="failed",
            duration=0.1,
            failed_requirements=("AUTH-002",),
            message=f"could not open a WebSocket to ws://127.0.0.1:1/ws?token={token}: refused",
            transcript=[
                {
                    "at": 0.001,
                    "channel": "alice#1",
                    "direction": "sent",
                    "kind": "handshake",
                    "text": f"GET /ws?token={token} (Authorization: Bearer {token})",
                },
                {
                    "at": 0.002,
                    "channel": "alice#1",
                    "direction": "received",
                    "kind": "text",
                    "text": f'{{"secret": "{secret}"}}',
                    "problems": [f"AUTH-002: the token {token}"],
                },
            ],
            figures={"token": token},
            replay="rep-conformance run --target t.yaml --check 'x'",
        )
    ]
    for check in checks:
        check.verdict, check.baseline_reason = judge(check, Baseline())
    return build_report(
        results=checks,
        requirement_results=requirement_results(checks),
        target={"name": "leaky", "ws_url": f"ws://127.0.0.1:1/ws?token={token}"},
        server={},
        strict=False,
        started_at=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
        duration=0.5,
        stale_entries=[],
        failing=True,
    )


def test_written_reports_carry_no_token_or_secret(tmp_path: Path) -> None:
    token = a_token()
    secret = f"report-secret-{secrets.token_hex(8)}"
    remember(secret, "JWT secret")
    report = report_with_a_token(token, secret)
    before = json.dumps(report, sort_keys=True, default=str)
    paths = write_reports(report, tmp_path)
    assert {p.name for p in paths} >= {"report.json", "report.html", "summary.md"}
    for path in paths:
        text = path.read_text(encoding="utf-8")
        assert secret_free(text, token, secret), path.name
        assert MASK in text, path.name
    assert json.dumps(report, sort_keys=True, default=str) == before, "the input is kept"
    written = json.loads((tmp_path / "report.json").read_text(encoding="utf-8"))
    assert written.keys() == report.keys()


def test_the_final_pass_catches_what_the_dictionary_walk_misses(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rendered texts are redacted again before they are written: the safety net."""
    import conformance.reports

    token = a_token()
    monkeypatch.setattr(conformance.reports, "redact_data", lambda data: data)
    for path in write_reports(report_with_a_token(token, "no secret"), tmp_path):
        assert secret_free(path.read_text(encoding="utf-8"), token), path.name


# -- a real run --------------------------------------------------------------------------


def artifact_texts(directory: Path) -> dict[str, str]:
    """Every file under ``directory`` (junit.xml, report.*, summary.md, replays/...)."""
    return {
        str(path.relative_to(directory)): path.read_text(encoding="utf-8", errors="replace")
        for path in sorted(directory.rglob("*"))
        if path.is_file()
    }


def leaks(texts: dict[str, str], secret: str) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for name, text in texts.items():
        hits = JWT_SHAPED.findall(text) + ([secret] if secret in text else [])
        if hits:
            found[name] = hits[:3]
    return found


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


@pytest.mark.network
def test_a_run_that_cannot_connect_leaves_no_token_behind(tmp_path: Path) -> None:
    secret = f"unreachable-secret-{secrets.token_hex(8)}"
    target = {
        "name": "nobody listens",
        "ws_url": f"ws://127.0.0.1:{closed_port()}/ws",
        "tokens": {"jwt": {"secret": secret}},
        "timeouts": {"connect": 2.0, "answer": 1.0},
    }
    target_path = write_target(target, tmp_path / "target.yaml")
    reports = tmp_path / "reports"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "conformance.cli",
            "run",
            "--target",
            str(target_path),
            "--report-dir",
            str(reports),
            "--check",
            "test_the_first_token_present_is_used",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode != 0, done.stdout[-2000:]
    assert "cannot check" in done.stdout + done.stderr, done.stdout[-2000:] + done.stderr[-2000:]
    texts = artifact_texts(reports) if reports.exists() else {}
    texts["stdout"], texts["stderr"] = done.stdout, done.stderr
    assert not leaks(texts, secret), leaks(texts, secret)


@contextmanager
def variant_server(name: str, directory: Path) -> Iterator[dict[str, Any]]:
    """A patched variant in its own process (``tests.conformance_variants.serve``)."""
    directory.mkdir(parents=True, exist_ok=True)
    found = fixtures(secrets.token_hex(3))
    config = directory / "server.yaml"
    config.write_text(yaml.safe_dump(server_config(found)))
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.conformance_variants.serve", name, str(config)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        ready, _, _ = select.select([process.stdout], [], [], 30)
        assert ready, f"variant {name} did not start"
        address = json.loads(process.stdout.readline())
        yield {
            "name": f"variant {name}",
            "ws_url": address["ws_url"],
            "http_url": address["http_url"],
            "tokens": {"jwt": {"secret": address["secret"]}},
            "fixtures": found,
            "timeouts": {"answer": 2.0, "silence": 0.25},
        }
    finally:
        for stream in (process.stdin, process.stdout):
            if stream is not None:
                stream.close()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


@pytest.mark.network
def test_failing_token_checks_leave_no_token_in_any_report(tmp_path: Path) -> None:
    with variant_server("query-token-wins-over-header", tmp_path / "server") as target:
        secret = target["tokens"]["jwt"]["secret"]
        code, report, _ = run_kit(
            target,
            tmp_path / "run",
            "--check",
            "test_the_first_token_present_is_used",
            "--check",
            "test_only_the_first_token_counts_even_when_it_is_invalid",
        )
    assert code == 1, "the variant breaks AUTH-002"
    assert {r["id"]: r for r in report["requirements"]}["AUTH-002"]["verdict"] == "fail"
    texts = artifact_texts(tmp_path / "run" / "reports")
    assert {"report.json", "report.html", "summary.md", "junit.xml"} <= texts.keys()
    assert not leaks(texts, secret), leaks(texts, secret)


class QueryTokenDropper:
    """A loopback TCP proxy in front of a server that drops every connection whose request
    line carries ``token=``: the handshakes that place a token in the URL fail with a
    connection error, whose message names that URL."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = conn.recv(65536)
            if not chunk:
                conn.close()
                return
            head += chunk
        if b"token=" in head.split(b"\r\n", 1)[0]:
            conn.close()
            return
        upstream = socket.create_connection(self.upstream)
        upstream.sendall(head)
        threading.Thread(target=self._pipe, args=(upstream, conn), daemon=True).start()
        self._pipe(conn, upstream)

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        try:
            while chunk := source.recv(65536):
                sink.sendall(chunk)
        except OSError:
            pass
        finally:
            for end in (source, sink):
                with suppress(OSError):
                    end.shutdown(socket.SHUT_RDWR)
                end.close()

    def close(self) -> None:
        self.listener.close()


@pytest.mark.network
def test_connection_errors_of_query_token_handshakes_leave_no_token_behind(
    tmp_path: Path,
) -> None:
    found = fixtures(secrets.token_hex(3))
    with running_server(parse_config(server_config(found))) as server:
        ws = urlsplit(server.ws_url)
        assert ws.hostname is not None and ws.port is not None
        proxy = QueryTokenDropper((ws.hostname, ws.port))
        try:
            target = {
                "name": "query tokens dropped",
                "ws_url": f"ws://127.0.0.1:{proxy.port}{ws.path}",
                "http_url": server.http_url,
                "tokens": {"jwt": {"secret": server.secret}},
                "fixtures": found,
                "timeouts": {"answer": 2.0, "silence": 0.25, "connect": 2.0},
            }
            code, report, _ = run_kit(
                target,
                tmp_path,
                "--check",
                "test_the_first_token_present_is_used",
                "--check",
                "test_only_the_first_token_counts_even_when_it_is_invalid",
            )
        finally:
            proxy.close()
    messages = [t["message"] for t in report["tests"] if t["verdict"] not in ("pass", "skip")]
    assert any("could not open a WebSocket to" in m for m in messages), (code, messages)
    texts = artifact_texts(tmp_path / "reports")
    assert "junit.xml" in texts
    assert not leaks(texts, server.secret), leaks(texts, server.secret)
    assert f"?token={MASK} JWT" in texts["report.json"], "the URL is shown, its token masked"


@pytest.mark.parametrize(
    "text",
    ["Authorization: Token abcdef123456", "{'Authorization': 'opaque-credential-1234'}"],
    ids=["other-scheme", "header-dict"],
)
def test_authorization_values_of_any_scheme_are_masked(text: str) -> None:
    masked = redact(text)
    assert "abcdef123456" not in masked and "opaque-credential" not in masked
    assert "Authorization" in masked


def test_long_frames_are_searched_in_linear_time() -> None:
    """A name before ``token=`` is not matched: a leading run would make the search
    quadratic. The value after any ``…token=`` is still masked."""
    assert redact("x_refresh_token=secretvalue123456") == "x_refresh_token=[redacted token …3456]"
    frame = "token " + "a-" * 20000
    assert redact(frame) == frame
