"""Bearer token checks: first sight against the raw signature verify, and a repeat.

First sight: ``TokenLoginService.verify`` on tokens it has never seen, with
its verified-token cache on as shipped. A pool of distinct tokens (minted
before timing) is cycled through a cache smaller than the pool, so every
check misses the LRU: each one parses, checks the claims, looks the key up,
verifies the signature, builds the identity and stores it in the cache
(evicting the oldest). Its peers check the same pool, in the same rounds:

- the floor, ``cryptography``'s RSA PKCS#1 v1.5 SHA-256 verify of the
  token: split off the signature, base64url-decode it, verify the signing
  input with the public key loaded once. No JSON, no claims;
- joserfc's own ``jwt.decode`` (key looked up by ``kid`` in a ``KeySet``)
  followed by ``JWTClaimsRegistry.validate`` for ``iss``, ``aud``, ``exp``
  and ``iat``: what a service written on joserfc directly does;
- PyJWT's ``jwt.decode`` with the same claims required, when installed
  (for reference, no target).

Repeated token: one token checked over and over, a cache hit each time
(expiry and key set re-checked). The loop's own cost is measured in the
same rounds and subtracted from every figure.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Sequence
from typing import Any

from cryptography.hazmat.primitives.asymmetric.padding import PKCS1v15
from cryptography.hazmat.primitives.hashes import SHA256
from harness import Loop, Row, Settings, measure, micros, net, ratio
from joserfc import jwt
from joserfc.jwk import KeySet, RSAKey
from peers import material
from workload import make_environ

from securityhandler.bearer import BearerAuthenticator

TITLE = "bearer tokens: first sight vs raw RS256 verify, and a repeated token"

#: Targets from the bearer-token issue.
MAX_FLOOR_RATIO = 2.0
REPEAT_TARGET_US = 3.0
#: Distinct tokens cycled through a cache of a quarter of that size.
POOL = 1024
CACHE = POOL // 4


def _cycle(check: Callable[[str], object], tokens: Sequence[str]) -> Loop:
    """Return a loop that checks the next ``n`` tokens of the pool, cycling.

    The position carries over between calls, so a token comes back only
    after the whole pool has gone by.
    """
    position = [0]
    size = len(tokens)

    def loop(n: int) -> None:
        start = position[0]
        for index in range(start, start + n):
            check(tokens[index % size])
        position[0] = (start + n) % size

    return loop


def _nothing(token: str) -> None:
    """Stand in for a check: the loop and call cost to subtract."""


def raw_verifier(jwks: dict[str, Any]) -> Callable[[str], None]:
    """Return the floor: the RS256 signature check alone, with ``cryptography``."""
    public_key = RSAKey.import_key(jwks["keys"][0]).get_op_key("verify")
    padding, algorithm = PKCS1v15(), SHA256()

    def check(token: str) -> None:
        signing_input, _, signature = token.rpartition(".")
        raw = base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4))
        public_key.verify(raw, signing_input.encode("ascii"), padding, algorithm)

    return check


def joserfc_verifier(jwks: dict[str, Any]) -> Callable[[str], None]:
    """Return joserfc's ``jwt.decode`` plus its claims registry."""
    keys = KeySet.import_key_set(jwks)
    registry = jwt.JWTClaimsRegistry(
        leeway=30,
        iss={"essential": True, "value": material.ISSUER},
        aud={"essential": True, "value": material.AUDIENCE},
        exp={"essential": True},
        iat={"essential": True},
    )

    def check(token: str) -> None:
        registry.validate(jwt.decode(token, keys, algorithms=["RS256"]).claims)

    return check


def pyjwt_verifier(jwks: dict[str, Any]) -> Callable[[str], None] | None:
    """Return PyJWT's ``jwt.decode`` with the same claims, or ``None``."""
    try:
        import jwt as pyjwt
    except ImportError:
        return None
    key = RSAKey.import_key(jwks["keys"][0]).get_op_key("verify")

    def check(token: str) -> None:
        pyjwt.decode(
            token,
            key,
            algorithms=["RS256"],
            audience=material.AUDIENCE,
            issuer=material.ISSUER,
            leeway=30,
            options={"require": ["exp", "iat", "iss", "aud"]},
        )

    return check


def run(settings: Settings) -> list[Row]:
    """Measure first sight against its peers, then the repeated token."""
    key = material.signing_key()
    jwks = material.public_jwks(key)
    tokens = [material.mint(key, f"svc-{n}") for n in range(POOL)]
    _check_all_pass(tokens, jwks)
    return _first_sight_rows(tokens, jwks, settings) + _repeat_rows(
        tokens[0], jwks, settings
    )


def _check_all_pass(tokens: Sequence[str], jwks: dict[str, Any]) -> None:
    """Fail the section if any candidate refuses a token: a refusal is cheap."""
    service = material.login_service(jwks)
    checks: list[Callable[[str], object]] = [
        raw_verifier(jwks),
        joserfc_verifier(jwks),
        service.verify,
    ]
    pyjwt = pyjwt_verifier(jwks)
    if pyjwt is not None:
        checks.append(pyjwt)
    for check in checks:
        check(tokens[0])


def _first_sight_rows(
    tokens: Sequence[str], jwks: dict[str, Any], settings: Settings
) -> list[Row]:
    service = material.login_service(jwks, cache_size=CACHE)
    loops = {
        "loop": _cycle(_nothing, tokens),
        "ours": _cycle(service.verify, tokens),
        "raw": _cycle(raw_verifier(jwks), tokens),
        "joserfc": _cycle(joserfc_verifier(jwks), tokens),
    }
    pyjwt = pyjwt_verifier(jwks)
    if pyjwt is not None:
        loops["pyjwt"] = _cycle(pyjwt, tokens)
    samples = measure(loops, settings)
    stats = {name: micros(net(samples[name], samples["loop"])) for name in loops}
    ours = stats["ours"]
    note = (
        f"{POOL} distinct tokens cycled through a {CACHE}-entry cache: every "
        "check misses; loop cost subtracted"
    )
    rows = [
        Row(
            "first sight, TokenLoginService.verify",
            ours,
            "raw cryptography verify",
            stats["raw"],
            ratio(ours, stats["raw"]),
            target=f"<= {MAX_FLOOR_RATIO:g}x floor",
            passed=ratio(ours, stats["raw"]) <= MAX_FLOOR_RATIO,
            note=note,
        ),
        Row(
            "first sight, TokenLoginService.verify",
            ours,
            "joserfc decode+claims",
            stats["joserfc"],
            ratio(ours, stats["joserfc"]),
            target="faster (< 1x)",
            passed=ratio(ours, stats["joserfc"]) < 1.0,
        ),
        Row(
            "joserfc jwt.decode + JWTClaimsRegistry",
            stats["joserfc"],
            "raw cryptography verify",
            stats["raw"],
            ratio(stats["joserfc"], stats["raw"]),
        ),
    ]
    if "pyjwt" in stats:
        rows.append(
            Row(
                "PyJWT jwt.decode",
                stats["pyjwt"],
                "raw cryptography verify",
                stats["raw"],
                ratio(stats["pyjwt"], stats["raw"]),
            )
        )
    return rows


def _repeat_rows(token: str, jwks: dict[str, Any], settings: Settings) -> list[Row]:
    service = material.login_service(jwks)
    authenticator = BearerAuthenticator(service, "bench")
    environ = make_environ(
        "GET", "/api/orders", headers={"HTTP_AUTHORIZATION": f"Bearer {token}"}
    )
    service.verify(token)
    loops = {
        "loop": _cycle(_nothing, [token]),
        "verify": _cycle(service.verify, [token]),
        "header loop": _repeat(_nothing, environ),
        "header": _repeat(authenticator.validate_request, environ),
    }
    samples = measure(loops, settings)
    verify = micros(net(samples["verify"], samples["loop"]))
    header = micros(net(samples["header"], samples["header loop"]))
    return [
        Row(
            "repeated token, TokenLoginService.verify",
            verify,
            target=f"<= {REPEAT_TARGET_US:g} µs",
            passed=verify.median <= REPEAT_TARGET_US,
            note="a cache hit: expiry and key set re-checked; loop cost subtracted",
        ),
        Row(
            "repeated token, BearerAuthenticator (header read + verify)",
            header,
        ),
    ]


def _repeat(check: Callable[[Any], object], argument: object) -> Loop:
    def loop(n: int) -> None:
        for _ in range(n):
            check(argument)

    return loop
