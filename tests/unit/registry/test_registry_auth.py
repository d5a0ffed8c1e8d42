"""WWW-Authenticate parsing, scopes, token answers and the token cache."""

from __future__ import annotations

import pytest

from lamina.registry.auth import (
    Challenge,
    Token,
    TokenCache,
    basic_authorization,
    parse_www_authenticate,
    repository_scope,
    token_from_response,
)


def test_bearer_challenge_with_all_parameters() -> None:
    [c] = parse_www_authenticate(
        'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",'
        'scope="repository:library/busybox:pull"')
    assert c.scheme == "bearer"
    assert c.realm == "https://auth.docker.io/token"
    assert c.service == "registry.docker.io"
    assert c.scopes == ("repository:library/busybox:pull",)


def test_basic_challenge_and_case_insensitive_names() -> None:
    [c] = parse_www_authenticate('BASIC Realm="Registry Realm"')
    assert c.scheme == "basic" and c.realm == "Registry Realm"


def test_several_challenges_in_one_header() -> None:
    found = parse_www_authenticate('Basic realm="a", Bearer realm="https://t/token",service="s"')
    assert [(c.scheme, c.realm) for c in found] == [("basic", "a"), ("bearer", "https://t/token")]
    assert found[1].service == "s"


def test_quoted_values_keep_commas_and_escapes() -> None:
    [c] = parse_www_authenticate(
        r'Bearer realm="https://t/token",scope="repository:a:pull,push repository:b:pull",'
        r'error="insufficient_scope",note="say \"hi\""')
    assert c.scopes == ("repository:a:pull,push", "repository:b:pull")
    assert c.params["error"] == "insufficient_scope"
    assert c.params["note"] == 'say "hi"'


def test_unquoted_token_values_and_garbage() -> None:
    [c] = parse_www_authenticate("Bearer realm=https://t/token, service=reg")
    assert c.realm == "https://t/token" and c.service == "reg"
    assert parse_www_authenticate("") == []
    assert [c.scheme for c in parse_www_authenticate(",,  Negotiate")] == ["negotiate"]


def test_scopes_and_basic_header() -> None:
    assert repository_scope("team/app") == "repository:team/app:pull"
    assert repository_scope("team/app", push=True) == "repository:team/app:pull,push"
    assert basic_authorization("alice", "s3cret:x") == "Basic YWxpY2U6czNjcmV0Ong="


def test_token_answers() -> None:
    t = token_from_response({"token": "abc", "expires_in": 300}, now=100.0)
    assert t == Token("abc", 400.0)
    oauth = token_from_response({"access_token": "xyz", "refresh_token": "r"}, now=0.0)
    assert oauth is not None and oauth.value == "xyz" and oauth.refresh_token == "r"
    assert oauth.expires_at == 60.0  # the spec's default lifetime
    short = token_from_response({"token": "s", "expires_in": 3}, now=0.0)
    assert short is not None and short.expires_at == 60.0  # at least 60 s
    assert token_from_response({"nothing": 1}) is None
    assert token_from_response(["token"]) is None


def test_token_cache_is_keyed_by_sorted_scopes_and_drops_expired() -> None:
    cache = TokenCache()
    cache.put("https://t", "svc", ["b", "a"], Token("one", float("inf")))
    assert cache.get("https://t", "svc", ["a", "b"]) == Token("one", float("inf"))
    assert cache.get("https://t", "svc", ["a"]) is None
    assert cache.get("https://t", "other", ["a", "b"]) is None
    cache.put("https://t", "svc", ["old"], Token("stale", 0.0))
    assert cache.get("https://t", "svc", ["old"]) is None
    assert len(cache) == 1
    cache.clear()
    assert len(cache) == 0


def test_challenge_params_are_frozen() -> None:
    c = Challenge("bearer", {"realm": "x"})
    with pytest.raises(TypeError):
        c.params["realm"] = "y"  # type: ignore[index]
    assert hash(c) == hash(Challenge("bearer", {"realm": "x"}))
