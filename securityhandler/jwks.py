"""Verification keys: one cached JSON Web Key Set per token issuer.

A :class:`JWKSCache` fetches the issuer's ``jwks_uri`` (configured, or read
from ``{issuer}/.well-known/openid-configuration``) and keeps the keys in
memory, shared by every thread of the process:

- the key set lives as long as the response's ``Cache-Control: max-age``
  (minus ``Age``), clamped to 5 minutes .. 24 hours; 10 minutes without it;
- one fetch is in flight at a time (single flight): while it runs, other
  threads keep using the current set, or wait for it when there is none;
- a token naming an unknown ``kid`` triggers a refetch at most once per
  ``refetch_cooldown`` (30 s), so a flood of made-up kids cannot turn into a
  fetch per request; a failed fetch is not retried sooner either;
- when the issuer is down, the last good set keeps serving up to
  ``stale_grace`` (1 hour) past its expiry, logged at WARNING; with no usable
  set at all :class:`~securityhandler.errors.KeysUnavailableError` is raised
  and the handler answers 503 with ``Retry-After``;
- fetches time out (5 s), never follow a redirect, and go to ``https://``
  only, except on loopback hosts (tests, the local issuer);
- keys come only from that document: a token's ``jku``, ``x5u``, ``jwk`` and
  ``x5c`` headers are never looked at. Keys that are weak or odd are skipped
  with a warning: RSA under 2048 bits, EC off P-256/384/521, OKP other than
  Ed25519/Ed448, symmetric keys, ``use: enc``, ``key_ops`` without
  ``verify``, and any key that carries private members.
"""

from __future__ import annotations

import binascii
import http.client
import ipaddress
import json
import logging
import math
import re
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from joserfc.jwk import ECKey, OKPKey, RSAKey
from joserfc.util import urlsafe_b64decode

from ._clock import now
from .errors import ConfigError, KeysUnavailableError

log = logging.getLogger(__name__)

#: Floor, ceiling and default of a key set's lifetime, in seconds.
MIN_TTL = 300
MAX_TTL = 86400
DEFAULT_TTL = 600
#: Least time between two fetches caused by unknown kids or failures.
REFETCH_COOLDOWN = 30.0
#: How long past its expiry the last good set serves while the issuer is down.
STALE_GRACE = 3600.0
#: Seconds a fetch may take.
FETCH_TIMEOUT = 5.0
#: Largest JWKS or discovery document read.
MAX_DOCUMENT_BYTES = 512 * 1024

#: JWS algorithm -> (key type, curves it may use or ``None`` for any).
ALGORITHMS: Mapping[str, tuple[str, frozenset[str] | None]] = {
    "RS256": ("RSA", None),
    "RS384": ("RSA", None),
    "RS512": ("RSA", None),
    "PS256": ("RSA", None),
    "PS384": ("RSA", None),
    "PS512": ("RSA", None),
    "ES256": ("EC", frozenset({"P-256"})),
    "ES384": ("EC", frozenset({"P-384"})),
    "ES512": ("EC", frozenset({"P-521"})),
    "EdDSA": ("OKP", frozenset({"Ed25519", "Ed448"})),
    "Ed25519": ("OKP", frozenset({"Ed25519"})),
    "Ed448": ("OKP", frozenset({"Ed448"})),
}

_EC_CURVES = frozenset({"P-256", "P-384", "P-521"})
_OKP_CURVES = frozenset({"Ed25519", "Ed448"})
_PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})
_MAX_AGE = re.compile(r"(?:^|[\s,])max-age\s*=\s*\"?(\d+)", re.IGNORECASE)
_NO_CACHE = re.compile(r"(?:^|[\s,])(?:no-cache|no-store)(?:$|[\s,=])", re.IGNORECASE)

VerificationKeyObject = RSAKey | ECKey | OKPKey


# --- strict JSON -------------------------------------------------------------


class StrictJSONError(ValueError):
    """Reject JSON that two parsers could read differently.

    :param reason: ``duplicate_member`` or ``non_finite_number``.
    :param description: what was found.
    """

    def __init__(self, reason: str, description: str) -> None:
        super().__init__(description)
        self.reason = reason
        self.description = description


def _unique_members(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        for name, _ in pairs:
            if name in seen:
                raise StrictJSONError(
                    "duplicate_member", f"Member {name[:40]!r} appears twice"
                )
            seen.add(name)
    return obj


def _no_constant(name: str) -> Any:
    raise StrictJSONError("non_finite_number", f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise StrictJSONError("non_finite_number", f"{text[:40]} overflows a double")
    return value


_STRICT_DECODER = json.JSONDecoder(
    object_pairs_hook=_unique_members,
    parse_constant=_no_constant,
    parse_float=_finite_float,
)

# The decoder's C scanner, typeshed does not declare it.
_SCAN_ONCE: Callable[[str, int], tuple[Any, int]] = _STRICT_DECODER.scan_once  # type: ignore[attr-defined]


def loads_strict(data: bytes | str) -> Any:
    """Parse UTF-8 JSON, refusing duplicate members and non-finite numbers.

    Two parsers that disagree on which duplicate member wins, or on what
    ``NaN`` or ``1e400`` mean, could read one signed document two ways; so
    neither is accepted.

    :raises StrictJSONError: for a duplicate member or a non-finite number.
    :raises ValueError: for any other JSON syntax error or invalid UTF-8.
    """
    text = data.decode("utf-8") if isinstance(data, bytes) else data
    if text[:1] != "{":
        return _STRICT_DECODER.decode(text)
    # The common case, a compact object: the C scanner alone, without
    # decode()'s whitespace handling around it.
    try:
        value, end = _SCAN_ONCE(text, 0)
    except StopIteration:
        return _STRICT_DECODER.decode(text)
    if end != len(text) and text[end:].strip(" \t\n\r"):
        raise ValueError("Extra data after the JSON value")
    return value


# --- URLs ----------------------------------------------------------------------


def is_loopback(host: str | None) -> bool:
    """Tell whether ``host`` names this machine (``localhost``, 127/8, ``::1``)."""
    if not host:
        return False
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def require_https(url: str, key: str) -> None:
    """Reject a URL that is not ``https://``, unless its host is loopback.

    :param url: the issuer or ``jwks_uri``.
    :param key: the config key to name in the error.
    :raises ConfigError: for any other scheme, or a URL without a host.
    """
    parts = urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return
    if parts.scheme == "http" and is_loopback(parts.hostname):
        return
    raise ConfigError(
        f"Expected an https:// URL (http:// only on loopback hosts), got {url!r}",
        key=key,
    )


# --- keys ----------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class VerificationKey:
    """A public key from a JWKS, with the algorithms it may verify.

    :param kid: the key id, ``None`` if the JWK has none.
    :param key: the joserfc key object.
    :param algorithms: the JWS algorithms bound to this key's type and curve
        (and to its ``alg`` member, when the JWK has one).
    """

    kid: str | None
    key: VerificationKeyObject
    algorithms: frozenset[str]


class KeySet:
    """The usable keys of one JWKS document, by ``kid``.

    A new object is made only when the keys change, so that holders of the
    previous object (the verified-token cache) can tell a rotation happened.
    """

    def __init__(self, keys: Iterable[VerificationKey], fingerprint: str) -> None:
        self.fingerprint = fingerprint
        self.keys = tuple(keys)
        by_kid: dict[str | None, list[VerificationKey]] = {}
        for key in self.keys:
            by_kid.setdefault(key.kid, []).append(key)
        self._by_kid = {kid: tuple(keys) for kid, keys in by_kid.items()}

    def __contains__(self, kid: object) -> bool:
        return kid in self._by_kid

    def __len__(self) -> int:
        return len(self.keys)

    def kids(self) -> frozenset[str]:
        """Return the key ids in the set."""
        return frozenset(kid for kid in self._by_kid if kid is not None)

    def find(self, kid: str | None, alg: str) -> VerificationKey | None:
        """Return the key for ``kid`` that may verify ``alg``, or ``None``.

        A token without ``kid`` is matched only when exactly one key of the
        set may verify its algorithm: guessing among several is not done.
        """
        if kid is None:
            candidates = [key for key in self.keys if alg in key.algorithms]
            return candidates[0] if len(candidates) == 1 else None
        for key in self._by_kid.get(kid, ()):
            if alg in key.algorithms:
                return key
        return None


def _b64_bits(value: object) -> int:
    if not isinstance(value, str):
        raise ValueError("not a string")
    data = urlsafe_b64decode(value.encode("ascii"))
    return int.from_bytes(data, "big").bit_length()


def _skip_reason(jwk: Mapping[str, Any]) -> str | None:
    """Return why a JWK must not be used for verification, or ``None``."""
    kty = jwk.get("kty")
    if kty not in ("RSA", "EC", "OKP"):
        return f"key type {kty!r} is not an asymmetric signature key"
    private = _PRIVATE_MEMBERS.intersection(jwk)
    if private:
        return f"it carries private members ({', '.join(sorted(private))})"
    if jwk.get("use", "sig") != "sig":
        return f"its 'use' is {jwk.get('use')!r}, not 'sig'"
    key_ops = jwk.get("key_ops")
    if key_ops is not None and (
        not isinstance(key_ops, list) or "verify" not in key_ops
    ):
        return "its 'key_ops' do not include 'verify'"
    alg = jwk.get("alg")
    if alg is not None and ALGORITHMS.get(alg, ("",))[0] != kty:
        return f"its 'alg' {alg!r} is not a signature algorithm for {kty} keys"
    if kty == "RSA":
        bits = _b64_bits(jwk.get("n"))
        if bits < 2048:
            return f"RSA modulus of {bits} bits is under 2048"
    elif kty == "EC" and jwk.get("crv") not in _EC_CURVES:
        return f"EC curve {jwk.get('crv')!r} is not P-256, P-384 or P-521"
    elif kty == "OKP" and jwk.get("crv") not in _OKP_CURVES:
        return f"OKP curve {jwk.get('crv')!r} is not Ed25519 or Ed448"
    return None


def _import(jwk: Mapping[str, Any]) -> VerificationKey:
    kty = jwk["kty"]
    data = dict(jwk)
    key: VerificationKeyObject
    if kty == "RSA":
        key = RSAKey.import_key(data)
    elif kty == "EC":
        key = ECKey.import_key(data)
    else:
        key = OKPKey.import_key(data)
    curve = jwk.get("crv")
    alg = jwk.get("alg")
    algorithms = frozenset(
        name
        for name, (key_type, curves) in ALGORITHMS.items()
        if key_type == kty
        and (curves is None or curve in curves)
        and (alg is None or alg == name)
    )
    kid = jwk.get("kid")
    return VerificationKey(kid if isinstance(kid, str) else None, key, algorithms)


def parse_jwks(document: object, source: str) -> KeySet:
    """Build a :class:`KeySet` from a JWKS document, skipping unfit keys.

    :param document: the parsed JSON.
    :param source: the URL, named in warnings.
    :raises ValueError: if the document is not a JWKS.
    """
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise ValueError("Document has no 'keys' list")
    keys: list[VerificationKey] = []
    canonical: list[str] = []
    for jwk in document["keys"]:
        kid = jwk.get("kid") if isinstance(jwk, dict) else None
        try:
            if not isinstance(jwk, dict):
                raise ValueError("entry is not a JSON object")
            reason = _skip_reason(jwk)
            if reason is None:
                keys.append(_import(jwk))
                canonical.append(json.dumps(jwk, sort_keys=True))
                continue
        except (ValueError, KeyError, TypeError, binascii.Error) as exc:
            reason = f"it does not parse ({exc.__class__.__name__})"
        log.warning("Skipping key %r of %s: %s", kid, source, reason)
    return KeySet(keys, "\n".join(sorted(canonical)))


# --- fetching ------------------------------------------------------------------


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Refuse every redirect: keys come from the configured URL only."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_OPENER = urllib.request.build_opener(_NoRedirect)
# Loopback fetches never go through a proxy from the environment.
_LOOPBACK_OPENER = urllib.request.build_opener(
    _NoRedirect, urllib.request.ProxyHandler({})
)

Fetcher = Callable[[str, float], tuple[bytes, Mapping[str, str]]]


def fetch_document(url: str, timeout: float) -> tuple[bytes, Mapping[str, str]]:
    """GET ``url`` and return the body and headers of a 200 answer.

    No redirect is followed and at most :data:`MAX_DOCUMENT_BYTES` are read.

    :raises OSError: for network errors, timeouts and other statuses.
    """
    opener = _LOOPBACK_OPENER if is_loopback(urlsplit(url).hostname) else _OPENER
    # require_https() vetted the scheme: https, or http on loopback.
    request = urllib.request.Request(  # noqa: S310
        url, headers={"Accept": "application/json"}
    )
    with opener.open(request, timeout=timeout) as response:
        if response.status != 200:
            raise OSError(f"HTTP {response.status}")
        body: bytes = response.read(MAX_DOCUMENT_BYTES + 1)
        if len(body) > MAX_DOCUMENT_BYTES:
            raise OSError(f"Document over {MAX_DOCUMENT_BYTES} bytes")
        return body, dict(response.headers.items())


def cache_lifetime(
    headers: Mapping[str, str],
    *,
    min_ttl: float = MIN_TTL,
    max_ttl: float = MAX_TTL,
    default_ttl: float = DEFAULT_TTL,
) -> float:
    """Return how long a fetched key set may be used, from its headers.

    ``max-age`` minus ``Age``, clamped to ``min_ttl`` .. ``max_ttl``;
    ``no-cache``/``no-store`` give the floor; no directive the default.
    """
    lowered = {name.lower(): value for name, value in headers.items()}
    control = lowered.get("cache-control", "")
    match = _MAX_AGE.search(control)
    if match:
        ttl = float(match.group(1))
        age = lowered.get("age", "").strip()
        if age.isdigit():
            ttl -= float(age)
    elif _NO_CACHE.search(control):
        ttl = min_ttl
    else:
        ttl = default_ttl
    return min(max(ttl, min_ttl), max_ttl)


class JWKSCache:
    """The key set of one issuer, fetched lazily and shared by all threads.

    :param jwks_uri: where the JWKS is; ``None`` reads it from the issuer's
        discovery document.
    :param issuer: the issuer URL, required for discovery, whose document
        must name exactly this issuer.
    :param name: the issuer's name in log records.
    :param clock: the time source; the token service sets its own.
    :param fetch_timeout: seconds a fetch may take.
    :param refetch_cooldown: least seconds between fetches caused by unknown
        kids or failures.
    :param stale_grace: seconds past expiry the last good set still serves
        while fetches fail.
    :param fetcher: replaces the HTTP GET (``url, timeout -> body, headers``).
    :raises ConfigError: for a non-https URL off loopback, or neither URL.
    """

    def __init__(
        self,
        jwks_uri: str | None = None,
        *,
        issuer: str | None = None,
        name: str = "",
        clock: Callable[[], float] = now,
        fetch_timeout: float = FETCH_TIMEOUT,
        min_ttl: float = MIN_TTL,
        max_ttl: float = MAX_TTL,
        default_ttl: float = DEFAULT_TTL,
        refetch_cooldown: float = REFETCH_COOLDOWN,
        stale_grace: float = STALE_GRACE,
        fetcher: Fetcher = fetch_document,
    ) -> None:
        if jwks_uri is None and issuer is None:
            raise ConfigError("Either 'jwks_uri' or 'issuer' is needed", key="jwks_uri")
        if jwks_uri is not None:
            require_https(jwks_uri, "jwks_uri")
        if issuer is not None and jwks_uri is None:
            require_https(issuer, "issuer")
        self.jwks_uri = jwks_uri
        self.issuer = issuer
        self.name = name or issuer or jwks_uri or ""
        self.clock = clock
        self.fetch_timeout = fetch_timeout
        self.min_ttl = min_ttl
        self.max_ttl = max_ttl
        self.default_ttl = default_ttl
        self.refetch_cooldown = refetch_cooldown
        self.stale_grace = stale_grace
        self.fetcher = fetcher
        self._lock = threading.Lock()
        self._keyset: KeySet | None = None
        self._fresh_until = -math.inf
        self._attempted_at = -math.inf
        self._attempts = 0

    @property
    def keyset(self) -> KeySet | None:
        """Return the last good key set, fresh or not, without fetching."""
        return self._keyset

    @property
    def fresh_until(self) -> float:
        """Return the time the current key set expires."""
        return self._fresh_until

    def current(self) -> KeySet:
        """Return the key set to verify with, fetching it when due.

        :raises KeysUnavailableError: when no usable set can be had.
        """
        keyset = self._keyset
        if keyset is not None and self.clock() < self._fresh_until:
            return keyset
        return self._refresh(force=False)

    def find(self, kid: str | None, alg: str) -> VerificationKey | None:
        """Return the key for ``kid`` and ``alg``, refetching once for a new kid.

        An unknown ``kid`` refetches the set, at most once per cooldown: the
        issuer may have rotated. A ``kid`` that is known but whose key does
        not fit ``alg`` does not refetch.

        :raises KeysUnavailableError: when no usable set can be had.
        """
        return self.lookup(kid, alg)[0]

    def lookup(
        self, kid: str | None, alg: str
    ) -> tuple[VerificationKey | None, KeySet]:
        """Return the key :meth:`find` returns, with the set it was looked up in.

        Reading the set apart from the key could catch another thread's
        refresh in between, and pair the key with a set that lacks it.

        :raises KeysUnavailableError: when no usable set can be had.
        """
        keyset = self.current()
        key = keyset.find(kid, alg)
        if key is None and kid is not None and kid not in keyset:
            keyset = self._refresh(force=True)
            key = keyset.find(kid, alg)
        return key, keyset

    def _refresh(self, *, force: bool) -> KeySet:
        attempts = self._attempts
        if self._servable():
            # Others keep serving the current set while one thread fetches.
            if not self._fetch_due(force) or not self._lock.acquire(blocking=False):
                return self._usable()
        else:
            # Nothing to serve: wait for the fetch in flight, if any.
            self._lock.acquire()
        try:
            # A fetch that finished while this thread waited is enough.
            if self._attempts == attempts and self._fetch_due(force):
                self._fetch()
        finally:
            self._lock.release()
        return self._usable()

    def _fetch_due(self, force: bool) -> bool:
        now = self.clock()
        if now - self._attempted_at < self.refetch_cooldown:
            return False
        return force or self._keyset is None or now >= self._fresh_until

    def _servable(self) -> bool:
        return self._keyset is not None and (
            self.clock() < self._fresh_until + self.stale_grace
        )

    def _usable(self) -> KeySet:
        keyset = self._keyset
        if keyset is not None and self._servable():
            return keyset
        waited = self.clock() - self._attempted_at
        retry_after = max(1, math.ceil(self.refetch_cooldown - waited))
        raise KeysUnavailableError(
            f"No verification keys for issuer {self.name!r}", retry_after=retry_after
        )

    def _fetch(self) -> None:
        now = self.clock()
        self._attempted_at = now
        self._attempts += 1
        try:
            keyset, ttl = self._download()
        except (OSError, ValueError, RecursionError, http.client.HTTPException) as exc:
            self._log_failure(now, exc)
            return
        previous = self._keyset
        if previous is None or previous.fingerprint != keyset.fingerprint:
            self._keyset = keyset
            log.info(
                "Keys of issuer %r: %s (valid %d s)",
                self.name,
                ", ".join(sorted(keyset.kids())) or "no kid",
                ttl,
            )
        self._fresh_until = now + ttl

    def _download(self) -> tuple[KeySet, float]:
        uri = self.jwks_uri or self._discover()
        body, headers = self.fetcher(uri, self.fetch_timeout)
        keyset = parse_jwks(loads_strict(body), uri)
        if not len(keyset):
            raise ValueError("No usable keys in the JWKS")
        ttl = cache_lifetime(
            headers,
            min_ttl=self.min_ttl,
            max_ttl=self.max_ttl,
            default_ttl=self.default_ttl,
        )
        return keyset, ttl

    def _discover(self) -> str:
        issuer = self.issuer
        assert issuer is not None
        url = issuer.rstrip("/") + "/.well-known/openid-configuration"
        body, _ = self.fetcher(url, self.fetch_timeout)
        document = loads_strict(body)
        if not isinstance(document, dict) or document.get("issuer") != issuer:
            raise ValueError(f"Discovery document at {url} names another issuer")
        jwks_uri = document.get("jwks_uri")
        if not isinstance(jwks_uri, str):
            raise ValueError(f"Discovery document at {url} has no 'jwks_uri'")
        try:
            require_https(jwks_uri, "jwks_uri")
        except ConfigError as exc:
            raise ValueError(exc.description) from exc
        self.jwks_uri = jwks_uri
        return jwks_uri

    def _log_failure(self, now: float, exc: Exception) -> None:
        if self._keyset is None:
            log.warning(
                "Fetching keys of issuer %r failed, none cached: %s", self.name, exc
            )
        elif now < self._fresh_until + self.stale_grace:
            log.warning(
                "Fetching keys of issuer %r failed: %s; serving the last good set, "
                "%d s past its expiry (grace %d s)",
                self.name,
                exc,
                max(0, now - self._fresh_until),
                self.stale_grace,
            )
        else:
            log.warning(
                "Fetching keys of issuer %r failed: %s; the last good set is past "
                "its grace period",
                self.name,
                exc,
            )
