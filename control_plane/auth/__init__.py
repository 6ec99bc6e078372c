"""Tokens, principals and scope checks for the control plane's HTTP API."""

from control_plane.auth.middleware import auth_middleware, current_principal, requires_scope
from control_plane.auth.principal import Principal, Scope, TokenKind
from control_plane.auth.store import TokenStore

__all__ = [
    "Principal",
    "Scope",
    "TokenKind",
    "TokenStore",
    "auth_middleware",
    "current_principal",
    "requires_scope",
]
