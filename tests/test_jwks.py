"""The per-issuer JWKS cache (issue 3 point 4, DESIGN section 5).

Keys are served by a :class:`~securityhandler.testing.LocalIssuer` over real
HTTP on loopback, whose counter tells how many fetches reached it. Time is an
injected clock, moved by hand; nothing sleeps.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from joserfc.jwk import ECKey
from joserfc.util import int_to_base64
from werkzeug.test import Client

from securityhandler.bearer import BearerAuthenticator
from securityhandler.constraints import Constraint, ConstraintMapping
from securityhandler.errors import ConfigError, KeysUnavailableError
from securityhandler.handler import ConstraintSecurityHandler
from securityhandler.jwks import JWKSCache, cache_lifetime
from securityhandler.testing import LocalIssuer

START = 1_900_000_000.0


class Clock:
    """A clock that moves only when told."""

    def __init__(self, now: float = START) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def cache(local_issuer: LocalIssuer, clock: Clock) -> JWKSCache:
    return JWKSCache(local_issuer.jwks_uri, name="local", clock=clock)


# --- lifetime ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("cache_control", "ttl"),
    [
        pytest.param(None, 600, id="no-header-10-min"),
        pytest.param("public, max-age=3600", 3600, id="max-age"),
        pytest.param("max-age=60", 300, id="floor-5-min"),
        pytest.param("max-age=999999", 86400, id="ceiling-24-h"),
        pytest.param("no-store", 300, id="no-store-floor"),
    ],
)
def test_jwks_lifetime_from_cache_control(
    local_issuer: LocalIssuer,
    cache: JWKSCache,
    clock: Clock,
    cache_control: str | None,
    ttl: int,
) -> None:
    local_issuer.cache_control = cache_control
    cache.current()
    clock.advance(ttl - 1)
    cache.current()
    fetches_before_expiry = local_issuer.jwks_fetches
    clock.advance(1)
    cache.current()
    assert (fetches_before_expiry, local_issuer.jwks_fetches) == (1, 2)


@pytest.mark.parametrize(
    ("headers", "ttl"),
    [
        pytest.param({"Cache-Control": "max-age=7200", "Age": "600"}, 6600, id="age"),
        pytest.param({"cache-control": "MAX-AGE=1000"}, 1000, id="case"),
        pytest.param({"Cache-Control": "max-age=1000", "Age": "900"}, 300, id="old"),
        pytest.param({"Cache-Control": "no-cache"}, 300, id="no-cache"),
        pytest.param({"Cache-Control": "private"}, 600, id="no-max-age"),
    ],
)
def test_jwks_cache_lifetime_rules(headers: dict[str, str], ttl: float) -> None:
    assert cache_lifetime(headers) == ttl


# --- refetching -----------------------------------------------------------------


def test_jwks_kid_flood_fetches_once_per_cooldown(
    local_issuer: LocalIssuer, cache: JWKSCache, clock: Clock
) -> None:
    cache.current()
    clock.advance(30)
    found = [cache.find(f"made-up-{n}", "RS256") for n in range(200)]
    clock.advance(29)
    found += [cache.find(f"later-{n}", "RS256") for n in range(200)]
    assert (local_issuer.jwks_fetches, set(found)) == (2, {None})
    clock.advance(1)
    cache.find("after-cooldown", "RS256")
    assert local_issuer.jwks_fetches == 3


def test_jwks_unknown_kid_right_after_fetch_waits_for_cooldown(
    local_issuer: LocalIssuer, cache: JWKSCache
) -> None:
    cache.current()
    assert cache.find(local_issuer.rotate(), "RS256") is None
    assert local_issuer.jwks_fetches == 1


def test_jwks_rotated_kid_found_by_refetch(
    local_issuer: LocalIssuer, cache: JWKSCache, clock: Clock
) -> None:
    cache.current()
    clock.advance(30)
    new_kid = local_issuer.rotate()
    key = cache.find(new_kid, "RS256")
    assert key is not None
    assert key.kid == new_kid


def test_jwks_known_kid_wrong_algorithm_does_not_refetch(
    local_issuer: LocalIssuer, cache: JWKSCache, clock: Clock
) -> None:
    cache.current()
    clock.advance(60)
    assert cache.find(local_issuer.kid, "ES256") is None
    assert local_issuer.jwks_fetches == 1


def test_jwks_unchanged_refetch_keeps_key_set_object(
    local_issuer: LocalIssuer, cache: JWKSCache, clock: Clock
) -> None:
    first = cache.current()
    clock.advance(600)
    assert cache.current() is first
    assert local_issuer.jwks_fetches == 2


def test_jwks_single_flight_under_concurrency(
    local_issuer: LocalIssuer, cache: JWKSCache
) -> None:
    local_issuer.pause()
    results: list[Any] = []

    def verify_key() -> None:
        results.append(cache.find(local_issuer.kid, "RS256"))

    threads = [threading.Thread(target=verify_key) for _ in range(8)]
    for thread in threads:
        thread.start()
    assert local_issuer.wait_for_fetches(1)
    local_issuer.resume()
    for thread in threads:
        thread.join()
    assert local_issuer.jwks_fetches == 1
    assert [key is not None for key in results] == [True] * 8


# --- the issuer is down -----------------------------------------------------------


def test_jwks_stale_set_served_within_grace(
    local_issuer: LocalIssuer,
    cache: JWKSCache,
    clock: Clock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    cache.current()
    local_issuer.down()
    clock.advance(600 + 3599)
    with caplog.at_level(logging.WARNING, logger="securityhandler.jwks"):
        key = cache.find(local_issuer.kid, "RS256")
    assert key is not None
    assert "serving the last good set" in caplog.text
    assert local_issuer.jwks_fetches == 2


def test_jwks_stale_set_refused_after_grace(
    local_issuer: LocalIssuer, cache: JWKSCache, clock: Clock
) -> None:
    cache.current()
    local_issuer.down()
    clock.advance(600 + 3600)
    with pytest.raises(KeysUnavailableError, match="'local'"):
        cache.current()


def test_jwks_failed_fetch_not_retried_within_cooldown(
    local_issuer: LocalIssuer, cache: JWKSCache, clock: Clock
) -> None:
    cache.current()
    local_issuer.down()
    clock.advance(600)
    for _ in range(50):
        cache.current()
        clock.advance(0.5)
    assert local_issuer.jwks_fetches == 2


def test_jwks_issuer_back_up_replaces_stale_set(
    local_issuer: LocalIssuer, cache: JWKSCache, clock: Clock
) -> None:
    cache.current()
    local_issuer.down()
    clock.advance(600)
    cache.current()
    local_issuer.up()
    clock.advance(30)
    cache.current()
    assert cache.fresh_until == clock.now + 600


def test_jwks_none_ever_fetched_raises_with_retry_after(
    local_issuer: LocalIssuer, cache: JWKSCache, clock: Clock
) -> None:
    local_issuer.down()
    with pytest.raises(KeysUnavailableError) as first:
        cache.current()
    clock.advance(10)
    with pytest.raises(KeysUnavailableError) as second:
        cache.current()
    assert (first.value.retry_after, second.value.retry_after) == (30, 20)
    assert local_issuer.jwks_fetches == 1


def test_jwks_unavailable_answers_503(
    local_issuer: LocalIssuer, recording_app: Any
) -> None:
    local_issuer.down()
    service = local_issuer.login_service()
    handler = ConstraintSecurityHandler(
        recording_app,
        [ConstraintMapping(("/*",), Constraint.any_user())],
        [BearerAuthenticator(service)],
    )
    response = Client(handler).get(
        "/x", headers={"Authorization": f"Bearer {local_issuer.mint()}"}
    )
    assert (response.status_code, response.headers["Retry-After"]) == (503, "30")
    assert not recording_app.called


def test_jwks_redirect_not_followed(
    local_issuer: LocalIssuer, cache: JWKSCache
) -> None:
    with LocalIssuer() as elsewhere:
        local_issuer.redirect_to = elsewhere.jwks_uri
        with pytest.raises(KeysUnavailableError):
            cache.current()
        assert elsewhere.jwks_fetches == 0


def test_jwks_fetch_times_out(local_issuer: LocalIssuer, clock: Clock) -> None:
    cache = JWKSCache(local_issuer.jwks_uri, clock=clock, fetch_timeout=0.05)
    local_issuer.pause()
    try:
        with pytest.raises(KeysUnavailableError):
            cache.current()
    finally:
        local_issuer.resume()


# --- odd and weak keys ---------------------------------------------------------------


def _rsa_1024() -> dict[str, Any]:
    weak = rsa.generate_private_key(65537, 1024)  # noqa: S505 - the point
    numbers = weak.public_key().public_numbers()
    return {"kty": "RSA", "n": int_to_base64(numbers.n), "e": int_to_base64(numbers.e)}


def _odd_key(kind: str, issuer: LocalIssuer) -> dict[str, Any]:
    # Keys that are the issuer's own signing key would verify its tokens:
    # only skipping them makes the kid unknown.
    if kind == "use-enc":
        return {**issuer.public_jwk(), "use": "enc"}
    if kind == "private":
        return issuer.private_jwk()
    if kind == "key-ops-sign":
        return {**issuer.public_jwk(), "key_ops": ["sign"]}
    if kind == "rsa-1024":
        return _rsa_1024()
    if kind == "secp256k1":
        return dict(ECKey.generate_key("secp256k1").as_dict(private=False))
    if kind == "oct":
        return {"kty": "oct", "k": "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0"}
    return {"kty": "RSA", "n": "%%%", "e": "AQAB"}


@pytest.mark.parametrize(
    ("kind", "alg", "reason"),
    [
        pytest.param("use-enc", "RS256", "'use' is 'enc'", id="use-enc"),
        pytest.param("private", "RS256", "private members", id="private"),
        pytest.param("key-ops-sign", "RS256", "'key_ops'", id="key-ops"),
        pytest.param("rsa-1024", "RS256", "1024 bits", id="rsa-1024"),
        pytest.param("secp256k1", "ES256", "secp256k1", id="ec-curve"),
        pytest.param("oct", "HS256", "'oct'", id="symmetric"),
        pytest.param("garbled", "RS256", "does not parse", id="garbled"),
    ],
)
def test_jwks_unfit_key_skipped_with_warning(
    local_issuer: LocalIssuer,
    cache: JWKSCache,
    caplog: pytest.LogCaptureFixture,
    kind: str,
    alg: str,
    reason: str,
) -> None:
    local_issuer.extra_keys.append({**_odd_key(kind, local_issuer), "kid": "odd"})
    with caplog.at_level(logging.WARNING, logger="securityhandler.jwks"):
        keyset = cache.current()
    assert (keyset.find("odd", alg), local_issuer.kid in keyset) == (None, True)
    assert f"Skipping key 'odd' of {local_issuer.jwks_uri}" in caplog.text
    assert reason in caplog.text


def test_jwks_only_unfit_keys_means_unavailable(
    local_issuer: LocalIssuer, cache: JWKSCache
) -> None:
    local_issuer.extra_keys.append({**_rsa_1024(), "kid": "weak"})
    local_issuer.retire(local_issuer.kid)
    with pytest.raises(KeysUnavailableError):
        cache.current()


def test_jwks_kidless_token_key_needs_single_candidate(
    local_issuer: LocalIssuer, cache: JWKSCache
) -> None:
    one = cache.current().find(None, "RS256")
    local_issuer.rotate()
    cache_two = JWKSCache(local_issuer.jwks_uri)
    assert one is not None
    assert cache_two.current().find(None, "RS256") is None


# --- where keys come from -------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        pytest.param("http://keys.example.test/jwks", id="http-remote"),
        pytest.param("ftp://127.0.0.1/jwks", id="ftp"),
        pytest.param("file:///etc/jwks.json", id="file"),
        pytest.param("https:///jwks", id="no-host"),
    ],
)
def test_jwks_uri_must_be_https_off_loopback(url: str) -> None:
    with pytest.raises(ConfigError, match="https://") as raised:
        JWKSCache(url)
    assert raised.value.key == "jwks_uri"


@pytest.mark.parametrize(
    "url",
    [
        pytest.param("http://127.0.0.1:8080/jwks", id="ipv4-loopback"),
        pytest.param("http://[::1]:8080/jwks", id="ipv6-loopback"),
        pytest.param("http://localhost/jwks", id="localhost"),
        pytest.param("https://keys.example.test/jwks", id="https"),
    ],
)
def test_jwks_uri_accepted(url: str) -> None:
    assert JWKSCache(url).jwks_uri == url


@pytest.fixture
def discovering(local_issuer: LocalIssuer, clock: Clock) -> JWKSCache:
    return JWKSCache(issuer=local_issuer.issuer, name="local", clock=clock)


def test_jwks_discovery_finds_keys_once(
    local_issuer: LocalIssuer, discovering: JWKSCache, clock: Clock
) -> None:
    discovering.current()
    clock.advance(600)
    discovering.current()
    assert discovering.jwks_uri == local_issuer.jwks_uri
    assert (local_issuer.discovery_fetches, local_issuer.jwks_fetches) == (1, 2)


def test_jwks_discovery_issuer_mismatch_refused(
    local_issuer: LocalIssuer,
    discovering: JWKSCache,
    caplog: pytest.LogCaptureFixture,
) -> None:
    local_issuer.discovery_issuer = "https://impostor.example.test"
    with pytest.raises(KeysUnavailableError):
        discovering.current()
    assert "names another issuer" in caplog.text
    assert local_issuer.jwks_fetches == 0


def test_jwks_token_service_clock_drives_cache(local_issuer: LocalIssuer) -> None:
    clock = Clock()
    service = local_issuer.login_service(clock=clock)
    service.issuers[0].jwks.current()
    clock.advance(600)
    service.issuers[0].jwks.current()
    assert local_issuer.jwks_fetches == 2
