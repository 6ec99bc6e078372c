from control_plane.auth.principal import (
    Principal,
    Scope,
    TokenKind,
    generate_token,
    hash_secret,
    secret_matches,
    split_token,
)


def test_token_round_trip() -> None:
    new = generate_token()
    parts = split_token(new.plaintext)
    assert parts == (new.token_id, new.secret)
    assert secret_matches(new.secret, hash_secret(new.secret))
    assert not secret_matches(new.secret + "x", hash_secret(new.secret))


def test_foreign_tokens_are_not_parsed() -> None:
    assert split_token("Bearer abc") is None
    assert split_token("hta_short_secret") is None
    assert split_token("hta_0123456789abcdef_") is None


def test_scopes_imply_lower_ones_only_for_admin_tokens() -> None:
    writer = Principal(TokenKind.ADMIN, "t", "w", frozenset({Scope.WRITE}))
    assert writer.has_scope(Scope.READ)
    assert writer.has_scope(Scope.WRITE)
    assert not writer.has_scope(Scope.ADMIN)
    agent = Principal(TokenKind.AGENT, "a", "agent", frozenset({Scope.ADMIN}), "host-1")
    assert not agent.has_scope(Scope.READ)
