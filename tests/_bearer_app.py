"""A bearer-protected WSGI app that ``tests/test_bearer_e2e.py`` serves with gunicorn.

Configured through environment variables set by the test:

- ``BEARER_ISSUER``: the issuer URL (a :class:`~securityhandler.testing.LocalIssuer`
  in the test process);
- ``BEARER_JWKS_URI``: its JWKS;
- ``BEARER_AUDIENCE``: the audience;
- ``BEARER_REFETCH_COOLDOWN``: seconds between JWKS fetches caused by
  unknown kids or failures.

``/api/*`` needs any authenticated caller. ``POST /_test/clock?advance=N``
moves the clock of the token service forward by ``N`` seconds: the test
cannot freeze time in another process, so the app takes an offset instead.
Test-only; it must run with one worker, whose threads share the offset.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING
from urllib.parse import parse_qs

from securityhandler import Constraint, ConstraintMapping, ConstraintSecurityHandler
from securityhandler.bearer import BearerAuthenticator
from securityhandler.jwks import JWKSCache
from securityhandler.tokens import TokenIssuer, TokenLoginService

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

_lock = threading.Lock()
_offset = 0.0


def clock() -> float:
    """Return the real time plus the offset the test asked for."""
    return time.time() + _offset


def _advance(environ: WSGIEnvironment) -> bytes:
    global _offset
    seconds = float(parse_qs(environ.get("QUERY_STRING", ""))["advance"][0])
    with _lock:
        _offset += seconds
        return f"{_offset}\n".encode()


def _inner(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
    if environ["PATH_INFO"] == "/_test/clock" and environ["REQUEST_METHOD"] == "POST":
        answer = _advance(environ)
    else:
        answer = f"hello {environ.get('REMOTE_USER')}\n".encode()
    start_response(
        "200 OK",
        [("Content-Type", "text/plain"), ("Content-Length", str(len(answer)))],
    )
    return [answer]


def _build() -> ConstraintSecurityHandler:
    issuer_url = os.environ["BEARER_ISSUER"]
    jwks = JWKSCache(
        os.environ["BEARER_JWKS_URI"],
        issuer=issuer_url,
        name="local",
        refetch_cooldown=float(os.environ["BEARER_REFETCH_COOLDOWN"]),
    )
    issuer = TokenIssuer(
        "local",
        issuer=issuer_url,
        audiences=[os.environ["BEARER_AUDIENCE"]],
        role_claims=["roles"],
        jwks=jwks,
    )
    service = TokenLoginService("local", [issuer], clock=clock)
    return ConstraintSecurityHandler(
        _inner,
        [
            ConstraintMapping(("/api/*",), Constraint.any_user(name="api")),
            ConstraintMapping(("/_test/*",), Constraint.allowed(name="test")),
        ],
        [BearerAuthenticator(service, "e2e")],
        realm="e2e",
    )


app = _build()
