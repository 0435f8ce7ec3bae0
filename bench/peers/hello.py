"""A hello-world Flask app, protected by the library ``BENCH_MODE`` names.

gunicorn serves it as ``peers.hello:app`` from ``bench/``. Every mode answers
``GET /hello`` with ``Hello, world!`` to a bearer token whose ``scope``
holds ``api:read``, 401 without a valid token and 403 without that scope,
checking the same claims (``iss``, ``aud``, ``exp``, ``iat``, the RS256
signature) against the key in ``BENCH_JWKS`` (a public JWKS, JSON):

- ``none``: no security at all, the baseline;
- ``securityhandler``: a bearer constraint (``ConstraintSecurityHandler`` +
  ``BearerAuthenticator``), as shipped; ``securityhandler-nocache`` the same
  with the verified-token cache off, so every request is a first sight;
- ``authlib``: Authlib's ``ResourceProtector`` with its RFC 9068
  ``JWTBearerTokenValidator`` (joserfc underneath), the key set imported once;
- ``flask-jwt-extended``: ``@jwt_required()``, the public key loaded once
  through ``decode_key_loader``;
- ``pyjwt``: a WSGI middleware calling PyJWT's ``jwt.decode`` with the key
  loaded once.

Each peer gets the set-up its documentation recommends for tokens from an
external issuer, with the key parsed once rather than per request.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from flask import Flask, abort

from peers.material import AUDIENCE, ISSUER, REQUIRED_SCOPE

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

MODES = (
    "none",
    "securityhandler",
    "securityhandler-nocache",
    "authlib",
    "flask-jwt-extended",
    "pyjwt",
)
GREETING = "Hello, world!"


def _bare() -> Flask:
    app = Flask("hello")

    @app.get("/hello")
    def hello() -> str:
        return GREETING

    return app


def _securityhandler(jwks: dict[str, Any], *, cache: bool) -> Flask:
    from peers.material import login_service
    from securityhandler import Constraint, ConstraintMapping, ConstraintSecurityHandler
    from securityhandler.bearer import BearerAuthenticator

    app = _bare()
    service = login_service(jwks, cache_size=None if cache else 0)
    app.wsgi_app = ConstraintSecurityHandler(  # type: ignore[method-assign]
        app.wsgi_app,
        [ConstraintMapping(("/hello",), Constraint.with_roles(REQUIRED_SCOPE))],
        [BearerAuthenticator(service, "bench")],
        realm="bench",
    )
    return app


def _authlib(jwks: dict[str, Any]) -> Flask:
    from authlib.integrations.flask_oauth2 import ResourceProtector
    from authlib.oauth2.rfc9068 import JWTBearerTokenValidator
    from joserfc.jwk import KeySet

    keys = KeySet.import_key_set(jwks)

    class Validator(JWTBearerTokenValidator):  # type: ignore[misc]
        def get_jwks(self) -> KeySet:
            return keys

    require_oauth = ResourceProtector()
    require_oauth.register_token_validator(Validator(ISSUER, AUDIENCE))
    app = Flask("hello")

    @app.get("/hello")
    @require_oauth(REQUIRED_SCOPE)
    def hello() -> str:
        return GREETING

    return app


def _flask_jwt_extended(jwks: dict[str, Any]) -> Flask:
    from flask_jwt_extended import JWTManager, get_jwt, jwt_required

    key = _public_key(jwks)
    app = Flask("hello")
    app.config.update(
        JWT_TOKEN_LOCATION=["headers"],
        JWT_ALGORITHM="RS256",
        JWT_DECODE_ALGORITHMS=["RS256"],
        JWT_DECODE_AUDIENCE=AUDIENCE,
        JWT_DECODE_ISSUER=ISSUER,
        JWT_DECODE_LEEWAY=30,
    )
    manager = JWTManager(app)
    manager.decode_key_loader(lambda header, payload: key)

    @app.get("/hello")
    @jwt_required()
    def hello() -> str:
        if REQUIRED_SCOPE not in str(get_jwt().get("scope", "")).split():
            abort(403)
        return GREETING

    return app


class PyJWTMiddleware:
    """Check ``Authorization: Bearer`` with PyJWT before the app runs."""

    def __init__(self, app: WSGIApplication, key: Any) -> None:
        self.app = app
        self.key = key

    def __call__(
        self, environ: WSGIEnvironment, start_response: StartResponse
    ) -> Iterable[bytes]:
        import jwt

        scheme, _, token = environ.get("HTTP_AUTHORIZATION", "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            return _deny(start_response, "401 Unauthorized", 'Bearer realm="bench"')
        try:
            claims = jwt.decode(
                token,
                self.key,
                algorithms=["RS256"],
                audience=AUDIENCE,
                issuer=ISSUER,
                leeway=30,
                options={"require": ["exp", "iat", "iss", "aud", "sub"]},
            )
        except jwt.PyJWTError:
            return _deny(
                start_response,
                "401 Unauthorized",
                'Bearer realm="bench", error="invalid_token"',
            )
        if REQUIRED_SCOPE not in str(claims.get("scope", "")).split():
            return _deny(
                start_response, "403 Forbidden", 'Bearer error="insufficient_scope"'
            )
        environ["REMOTE_USER"] = claims["sub"]
        return self.app(environ, start_response)


def _deny(start_response: StartResponse, status: str, challenge: str) -> list[bytes]:
    start_response(
        status,
        [
            ("Content-Type", "text/plain"),
            ("Content-Length", "0"),
            ("WWW-Authenticate", challenge),
        ],
    )
    return []


def _pyjwt(jwks: dict[str, Any]) -> Flask:
    app = _bare()
    app.wsgi_app = PyJWTMiddleware(  # type: ignore[method-assign]
        app.wsgi_app, _public_key(jwks)
    )
    return app


def _public_key(jwks: dict[str, Any]) -> Any:
    """Return the JWKS's one key as a ``cryptography`` public key object."""
    from joserfc.jwk import RSAKey

    return RSAKey.import_key(jwks["keys"][0]).get_op_key("verify")


def build(mode: str, jwks: dict[str, Any]) -> Flask:
    """Return the app of ``mode`` (one of :data:`MODES`)."""
    builders: dict[str, Callable[[], Flask]] = {
        "none": _bare,
        "securityhandler": lambda: _securityhandler(jwks, cache=True),
        "securityhandler-nocache": lambda: _securityhandler(jwks, cache=False),
        "authlib": lambda: _authlib(jwks),
        "flask-jwt-extended": lambda: _flask_jwt_extended(jwks),
        "pyjwt": lambda: _pyjwt(jwks),
    }
    return builders[mode]()


if os.environ.get("BENCH_MODE"):
    app = build(os.environ["BENCH_MODE"], json.loads(os.environ["BENCH_JWKS"]))
