"""RS256 access tokens and their key, as every token benchmark uses them.

The tokens have the shape of RFC 9068 access tokens from a client-credentials
grant, as ``shared/idp`` (oidc-provider) issues them: ``typ: at+jwt``, a
``kid``, and ``iss``, ``aud``, ``sub``, ``client_id``, ``scope``, ``roles``,
``jti``, ``iat``, ``exp``. The key is RSA-2048, the size Google, Okta and
Entra sign with.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Mapping
from typing import Any

from joserfc import jwt
from joserfc.jwk import RSAKey

from securityhandler.jwks import JWKSCache
from securityhandler.tokens import TokenIssuer, TokenLoginService

ISSUER = "https://issuer.example.test"
JWKS_URI = ISSUER + "/jwks"
AUDIENCE = "https://api.example.test"
#: The scope every token carries, and the one the protected route needs.
SCOPE = "api:read api:write"
REQUIRED_SCOPE = "api:read"
LIFETIME = 3600


def signing_key() -> RSAKey:
    """Generate an RSA-2048 signing key with a thumbprint ``kid``."""
    return RSAKey.generate_key(2048, auto_kid=True)


def public_jwks(key: RSAKey) -> dict[str, Any]:
    """Return the JWKS that publishes ``key``."""
    jwk = dict(key.as_dict(private=False))
    jwk.update(use="sig", alg="RS256")
    return {"keys": [jwk]}


def claims(
    subject: str, *, scope: str = SCOPE, now: int | None = None
) -> dict[str, Any]:
    """Return the claims of one access token for ``subject``."""
    issued = int(time.time()) if now is None else now
    return {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": subject,
        "client_id": subject,
        "scope": scope,
        "roles": ["service"],
        "jti": str(uuid.uuid4()),
        "iat": issued,
        "exp": issued + LIFETIME,
    }


def mint(key: RSAKey, subject: str = "svc-orders", *, scope: str = SCOPE) -> str:
    """Return a signed access token for ``subject``."""
    header = {"alg": "RS256", "typ": "at+jwt", "kid": key.kid}
    return jwt.encode(header, claims(subject, scope=scope), key)


def login_service(
    jwks: Mapping[str, Any], *, cache_size: int | None = None
) -> TokenLoginService:
    """Return a token service trusting :data:`ISSUER`, keys served from memory.

    The JWKS comes through the cache's ``fetcher`` hook with a one-day
    ``max-age``, so no network is involved and no refetch happens during a run.
    Roles are read from ``scope``.
    """
    document = json.dumps(jwks).encode()

    def fetch(url: str, timeout: float) -> tuple[bytes, Mapping[str, str]]:
        return document, {"Cache-Control": "max-age=86400"}

    cache = JWKSCache(JWKS_URI, issuer=ISSUER, name="bench", fetcher=fetch)
    issuer = TokenIssuer(
        "bench", issuer=ISSUER, audiences=[AUDIENCE], role_claims=["scope"], jwks=cache
    )
    if cache_size is None:
        return TokenLoginService("bench", [issuer])
    return TokenLoginService("bench", [issuer], cache_size=cache_size)
