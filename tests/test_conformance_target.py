"""Target files: the example validates, defaults come from the schema, mistakes are named."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from conformance.target import (
    SCHEMA_PATH,
    CommandTokens,
    JwtTokens,
    TargetError,
    load_target,
    parse_target,
    target_schema,
)
from conformance.tokens import (
    CommandTokenSource,
    JwtTokenSource,
    TokenUnavailable,
    hmac_token,
    tampered,
    unsigned_token,
)

EXAMPLE = SCHEMA_PATH.with_name("target.example.yaml")


def minimal(**extra: Any) -> dict[str, Any]:
    return {"ws_url": "ws://127.0.0.1:9/ws", "tokens": {"jwt": {"secret": "s"}}, **extra}


def test_the_shipped_example_is_a_valid_target(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REP_JWT_SECRET", "from-the-environment")
    target = load_target(EXAMPLE)
    assert isinstance(target.tokens, JwtTokens)
    assert target.tokens.secret == "from-the-environment"
    assert target.fixtures.password_room is not None
    assert target.fixtures.password_room.password == "open-sesame"
    assert target.claimed_features is not None and "rooms" in target.claimed_features
    # The README's server has no known failures (tests/test_example_target.py runs it).
    assert target.baseline == ()


def test_defaults_are_the_schemas() -> None:
    target = parse_target(minimal())
    schema = target_schema()["properties"]
    assert target.timeouts.answer == schema["timeouts"]["properties"]["answer"]["default"]
    assert (
        target.budgets.max_rate_messages
        == (schema["budgets"]["properties"]["max_rate_messages"]["default"])
    )
    assert target.node.http_url == "http://127.0.0.1:9"
    assert isinstance(target.tokens, JwtTokens)
    assert target.tokens.algorithm == "HS256"
    assert target.tokens.accepted_algorithms == ("HS256",)
    assert target.claimed_features is None


def test_a_wss_url_gives_an_https_base() -> None:
    assert parse_target(minimal(ws_url="wss://rep.example/ws")).node.http_url == (
        "https://rep.example"
    )


def test_command_tokens_and_other_nodes() -> None:
    target = parse_target(
        minimal(
            tokens={"command": "mint {user}"},
            nodes=[{"ws_url": "ws://127.0.0.1:10/ws"}],
        )
    )
    assert isinstance(target.tokens, CommandTokens)
    assert target.other_nodes[0].http_url == "http://127.0.0.1:10"


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        ({"tokens": {"jwt": {"secret": "s"}}}, "ws_url"),
        (minimal(ws_url="http://x/ws"), "ws_url"),
        (minimal(colour="blue"), "colour"),
        (minimal(tokens={"jwt": {"secret": "s"}, "command": "x"}), "tokens"),
        (minimal(timeouts={"answer": 0}), "timeouts/answer"),
        (minimal(baseline=[{"reason": "no target"}]), "baseline/0"),
        (minimal(baseline=[{"requirement": "ERR-003"}]), "baseline/0"),
        ("just a string", "top level"),
    ],
    ids=[
        "no-ws-url",
        "http-ws-url",
        "unknown-key",
        "two-token-sources",
        "zero-timeout",
        "baseline-without-subject",
        "baseline-without-reason",
        "not-a-mapping",
    ],
)
def test_invalid_targets_say_where_the_mistake_is(raw: Any, fragment: str) -> None:
    with pytest.raises(TargetError, match=fragment):
        parse_target(raw)


def test_baseline_requirements_must_exist() -> None:
    with pytest.raises(TargetError, match="XYZ-999"):
        parse_target(minimal(baseline=[{"requirement": "XYZ-999", "reason": "typo"}]))


def test_a_missing_secret_variable_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("REP_KIT_NO_SUCH_SECRET", raising=False)
    with pytest.raises(TargetError, match="REP_KIT_NO_SUCH_SECRET"):
        parse_target(minimal(tokens={"jwt": {"secret_env": "REP_KIT_NO_SUCH_SECRET"}}))


def test_unreadable_files_are_target_errors(tmp_path: Path) -> None:
    with pytest.raises(TargetError, match="cannot read"):
        load_target(tmp_path / "missing.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("ws_url: [unclosed")
    with pytest.raises(TargetError, match="cannot read"):
        load_target(broken)


def test_a_loaded_target_remembers_its_file(tmp_path: Path) -> None:
    path = tmp_path / "t.yaml"
    path.write_text(yaml.safe_dump(minimal(tokens={"jwt": {"secret": "hunter2-secret"}})))
    target = load_target(path)
    assert target.source == path
    assert target.describe()["tokens"] == "jwt"
    assert "hunter2" not in str(target.describe()), "reports must never show the secret"


# -- tokens ------------------------------------------------------------------------------


def test_hmac_tokens_verify_with_a_standard_library() -> None:
    import jwt

    secret = "k" * 64
    for algorithm in ("HS256", "HS384", "HS512"):
        token = hmac_token({"sub": "alice", "exp": 4_000_000_000}, secret, algorithm)
        assert jwt.decode(token, secret, algorithms=[algorithm])["sub"] == "alice"
        with pytest.raises(jwt.InvalidSignatureError):
            jwt.decode(tampered(token), secret, algorithms=[algorithm])


def test_unsigned_tokens_name_the_algorithm_in_their_header() -> None:
    import jwt

    token = unsigned_token({"sub": "mallory"}, alg="NoNe")
    assert jwt.get_unverified_header(token)["alg"] == "NoNe"
    assert token.endswith(".")


def test_the_jwt_source_knows_which_algorithms_must_be_refused() -> None:
    source = JwtTokenSource(JwtTokens("s", "HS256", ("HS256", "HS384")))
    assert source.refused_algorithms() == ["HS512"]


def test_the_command_source_fills_placeholders(tmp_path: Path) -> None:
    import sys

    script = tmp_path / "mint.py"
    script.write_text("import sys; print('warming up'); print('tok:' + ':'.join(sys.argv[1:]))")
    source = CommandTokenSource(
        CommandTokens(f"{sys.executable} {script} {{user}} {{roles}} {{permissions}} {{ttl}}")
    )
    assert source.mint("bob", ["user", "admin"], ["data:read"], ttl=-5) == (
        "tok:bob:user,admin:data:read:-5"
    )


def test_the_command_source_says_what_it_cannot_do(tmp_path: Path) -> None:
    source = CommandTokenSource(CommandTokens("mint {user}"))
    with pytest.raises(TokenUnavailable, match="permissions"):
        source.mint("bob", ["user"], ["data:read"])
    with pytest.raises(TokenUnavailable, match="ttl"):
        source.mint("bob", ["user"], ttl=5)
    with pytest.raises(TokenUnavailable, match=r"tokens\.jwt"):
        source.sign({"sub": "bob"})
    failing = CommandTokenSource(CommandTokens(f"false {tmp_path}"))
    with pytest.raises(TokenUnavailable, match="exited 1"):
        failing.mint("bob", ["user"])
