"""Bearer tokens: issuers, their policies, and :class:`TokenLoginService`.

A :class:`TokenIssuer` is one party whose JWTs the service accepts, with its
own policy: audiences, algorithms, leeway, the principal claim, the claims
that carry roles, a ``role_map`` and required claim values. Presets fill
these in for Google, IAP, Okta, Entra ID and Keycloak.

:class:`TokenLoginService` turns a token into a
:class:`~securityhandler.identity.UserIdentity`. The order of the checks:

1. size: over the largest ``max_token_bytes`` of its issuers, refused unread;
2. shape: exactly three base64url segments of the strict alphabet (five
   segments, a JWE, is refused as encrypted);
3. header and payload: UTF-8 JSON objects, parsed here with duplicate
   members, ``NaN``/``Infinity`` and overflowing numbers refused; ``crit``,
   ``b64``, ``cty`` (nested tokens) and ``typ`` values other than ``JWT`` /
   ``at+jwt`` refused; ``jku``, ``x5u``, ``jwk``, ``x5c`` never used;
4. issuer: chosen by exact ``iss`` match before any key is fetched, so an
   unknown issuer costs no network; then its own size cap and ``alg``
   allow-list;
5. claims, read from the still unverified payload and checked against the
   injected clock, so that a token failing them costs no key fetch and no
   signature check: ``exp``, ``iat`` required, ``nbf`` optional, all numbers
   (not booleans or strings); with leeway L a token is valid while
   ``now < exp + L``, ``nbf <= now + L`` and ``iat <= now + L``; ``aud`` a
   string or list holding one of ours; ``azp`` one of ours when an ID token
   has several audiences; required claim values; the principal claim a
   string. A token that fails here is refused whatever its signature;
6. key: the ``kid`` in the issuer's JWKS, of a type bound to ``alg`` (RS*
   and PS* RSA, ES256 P-256, ES384 P-384, ES512 P-521, EdDSA Ed25519/Ed448);
7. signature, through joserfc's algorithm object with the cached key.

A verified token is kept in a bounded LRU cache keyed by the token itself;
a hit re-checks expiry against the clock and that the issuer's key set has
not changed since (a rotation, or the kid retired, sends the token through
the full check again).
"""

from __future__ import annotations

import binascii
import re
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any, NamedTuple, NoReturn

from joserfc.jwa import JWSAlgModel
from joserfc.jws import JWSRegistry

from ._clock import now
from .errors import ConfigError, SecurityHandlerError
from .identity import UserIdentity
from .jwks import (
    ALGORITHMS,
    JWKSCache,
    KeySet,
    StrictJSONError,
    loads_strict,
    require_https,
)

DEFAULT_LEEWAY = 30
DEFAULT_MAX_TOKEN_BYTES = 8192
DEFAULT_CACHE_SIZE = 4096
_HEADER_CACHE_SIZE = 64
#: Algorithms a generic issuer accepts unless told otherwise.
GENERIC_ALGORITHMS = ("RS256", "PS256", "ES256", "EdDSA")

# The base64url alphabet (RFC 4648 5) and the segment separator.
_BASE64URL_AND_DOT = (
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_."
)
_TOKEN_TYPES = frozenset({"jwt", "at+jwt", "application/jwt", "application/at+jwt"})
_ACCESS_TOKEN_TYPES = frozenset({"at+jwt", "application/at+jwt"})
_SPLIT_CLAIMS = frozenset({"scope", "scp"})
_URLSAFE = bytes.maketrans(b"-_", b"+/")
_PADS = (b"", b"=", b"==")
# The last character of a segment short of 1 (or 2) padding characters
# carries 2 (or 4) unused bits, which must be zero.
_CANONICAL_LAST = (b"", b"AEIMQUYcgkosw048", b"AQgw")
_MAX_FIELD = 256

_ALG_MODELS: Mapping[str, JWSAlgModel] = {
    name: JWSRegistry.algorithms[name] for name in ALGORITHMS
}

_IAP_AUDIENCE = re.compile(
    r"/projects/\d+/(?:"
    r"global/backendServices/\d+"  # load balancer backend service
    r"|apps/[a-z][a-z0-9.:-]*[a-z0-9]"  # App Engine app (project id)
    r"|locations/[a-z0-9-]+/services/[a-z][a-z0-9-]*"  # Cloud Run service
    r")"
)
_ENTRA_V1 = re.compile(r"https://sts\.windows\.net/([0-9a-fA-F-]{36})/")
_ENTRA_V2 = re.compile(r"https://login\.microsoftonline\.com/([0-9a-fA-F-]{36})/v2\.0")


class InvalidTokenError(SecurityHandlerError):
    """A bearer token was refused.

    Authenticators turn this into a ``Failed`` state (401); it never
    reaches the handler as an exception.

    :param reason: the audit reason code, such as ``token_expired``.
    :param description: detail for the audit record; never the token.
    :param issuer: the ``iss`` the token claimed, if read.
    :param kid: the key id the token named, if read.
    :param principal: the principal the token claimed, if read.
    """

    error = "invalid_token"

    def __init__(
        self,
        reason: str,
        description: str,
        *,
        issuer: str | None = None,
        kid: str | None = None,
        principal: str | None = None,
    ) -> None:
        super().__init__(description)
        self.reason = reason
        self.issuer = issuer
        self.kid = kid
        self.principal = principal


class _Reject(Exception):
    """A check failed; the caller adds what it knows of the token."""

    def __init__(self, reason: str, description: str) -> None:
        super().__init__(description)
        self.reason = reason
        self.description = description


# --- presets ---------------------------------------------------------------------


@dataclass(frozen=True)
class Preset:
    """Defaults for one kind of issuer.

    :param name: the preset's name in configuration.
    :param issuer: the issuer URL when it is fixed (Google, IAP).
    :param aliases: other ``iss`` spellings of that same issuer.
    :param jwks_uri: the JWKS when it is fixed.
    :param algorithms: the default allow-list.
    :param principal_claim: the claim that names the user.
    :param role_claims: dotted paths of claims whose values are roles.
    :param map_claims: claims looked up in ``role_map`` but not roles
        themselves (a client id, a hosted domain).
    :param required_claims: claim values every token must carry.
    :param check_azp: check ``azp`` when an ID token has several audiences.
    :param audience_pattern: the shape every configured audience must have.
    """

    name: str
    issuer: str | None = None
    aliases: tuple[str, ...] = ()
    jwks_uri: str | None = None
    algorithms: tuple[str, ...] = GENERIC_ALGORITHMS
    principal_claim: str = "sub"
    role_claims: tuple[str, ...] = ("roles", "groups", "scope", "scp")
    map_claims: tuple[str, ...] = ()
    required_claims: Mapping[str, Any] = field(
        default_factory=lambda: MappingProxyType({})
    )
    check_azp: bool = True
    audience_pattern: re.Pattern[str] | None = None


GENERIC = Preset("generic")

#: The presets by name.
PRESETS: Mapping[str, Preset] = MappingProxyType(
    {
        # Google ID tokens: users and service accounts (Cloud Run callers).
        # Service accounts are allowed by e-mail through role_map.
        "google": Preset(
            "google",
            issuer="https://accounts.google.com",
            aliases=("accounts.google.com",),
            jwks_uri="https://www.googleapis.com/oauth2/v3/certs",
            algorithms=("RS256",),
            principal_claim="email",
            role_claims=(),
            map_claims=("hd",),
            required_claims=MappingProxyType({"email_verified": True}),
        ),
        # The x-goog-iap-jwt-assertion header of Identity-Aware Proxy.
        "iap": Preset(
            "iap",
            issuer="https://cloud.google.com/iap",
            jwks_uri="https://www.gstatic.com/iap/verify/public_key-jwk",
            algorithms=("ES256",),
            principal_claim="email",
            role_claims=(),
            map_claims=("hd",),
            audience_pattern=_IAP_AUDIENCE,
        ),
        # Okta custom authorization server access tokens.
        "okta": Preset(
            "okta",
            algorithms=("RS256",),
            role_claims=("scp", "groups"),
            map_claims=("cid",),
            check_azp=False,
        ),
        # Entra ID (Azure AD) access tokens, v1 and v2.
        "entra": Preset(
            "entra",
            algorithms=("RS256",),
            principal_claim="oid",
            role_claims=("roles", "scp"),
            map_claims=("azp", "appid"),
            check_azp=False,
        ),
        # Keycloak access tokens; client roles of each audience are added.
        "keycloak": Preset(
            "keycloak",
            algorithms=("RS256",),
            principal_claim="preferred_username",
            role_claims=("realm_access.roles",),
            map_claims=("azp",),
            check_azp=False,
        ),
    }
)


def _entra_forms(issuer: str) -> tuple[tuple[str, ...], str | None]:
    """Return the other issuer spelling and the tenant's JWKS, if known."""
    v1 = _ENTRA_V1.fullmatch(issuer)
    v2 = _ENTRA_V2.fullmatch(issuer)
    match = v1 or v2
    if match is None:
        return (), None
    tenant = match.group(1)
    other = (
        f"https://login.microsoftonline.com/{tenant}/v2.0"
        if v1
        else f"https://sts.windows.net/{tenant}/"
    )
    jwks = f"https://login.microsoftonline.com/{tenant}/discovery/v2.0/keys"
    return (other,), jwks


# --- issuers ---------------------------------------------------------------------


class TokenIssuer:
    """One token issuer and the policy its tokens must meet.

    ``None`` for a setting means the preset's value, or the generic default
    without a preset (algorithms ``RS256 PS256 ES256 EdDSA``, principal
    ``sub``, roles from ``roles``, ``groups``, ``scope`` and ``scp``).

    :param name: the name in configuration and log records.
    :param issuer: the exact ``iss`` value; ``https://`` except on loopback.
        Optional for the ``google`` and ``iap`` presets, whose issuer is fixed.
    :param audiences: the ``aud`` values meant for this service; at least
        one. A token must name one of them.
    :param preset: ``google``, ``iap``, ``okta``, ``entra`` or ``keycloak``.
    :param jwks_uri: where the keys are; otherwise read from the issuer's
        ``/.well-known/openid-configuration``.
    :param algorithms: the JWS algorithms accepted; asymmetric ones only,
        since the keys are public.
    :param leeway: seconds of clock skew allowed on ``exp``, ``nbf``, ``iat``.
    :param principal_claim: the claim whose value becomes ``REMOTE_USER``.
    :param role_claims: dotted paths (``realm_access.roles``) of claims whose
        values are roles: strings, lists of strings, and space-separated
        ``scope``/``scp`` strings.
    :param role_map: roles granted to a principal, or to a value of a role
        claim or of a preset's client/domain claim (Okta ``cid``, Entra
        ``azp``/``appid``, Keycloak ``azp``, Google and IAP ``hd``). Other
        claims are not consulted: a user may be able to set them.
    :param required_claims: claim values every token must carry, compared
        strictly (``true`` is not ``1``).
    :param max_token_bytes: longer tokens are refused before decoding.
    :param jwks: a key cache to use instead of a new one (tuning, tests).
    :raises ConfigError: naming the setting at fault.
    """

    def __init__(
        self,
        name: str,
        *,
        issuer: str | None = None,
        audiences: Iterable[str] = (),
        preset: str | None = None,
        jwks_uri: str | None = None,
        algorithms: Iterable[str] | None = None,
        leeway: int = DEFAULT_LEEWAY,
        principal_claim: str | None = None,
        role_claims: Iterable[str] | None = None,
        role_map: Mapping[str, Iterable[str]] | None = None,
        required_claims: Mapping[str, Any] | None = None,
        max_token_bytes: int = DEFAULT_MAX_TOKEN_BYTES,
        jwks: JWKSCache | None = None,
    ) -> None:
        self.name = name
        self.preset = self._preset(preset)
        self.issuer, aliases, default_jwks = self._issuer(issuer)
        self.issuers = frozenset((self.issuer, *aliases))
        self.audiences = self._audiences(audiences)
        self.algorithms = self._algorithms(algorithms)
        self.leeway = self._non_negative("leeway", leeway)
        self.max_token_bytes = self._non_negative("max_token_bytes", max_token_bytes)
        self.principal_claim = principal_claim or self.preset.principal_claim
        self.role_claims = self._role_claims(role_claims)
        self.map_claims = self.preset.map_claims
        self.role_map = self._role_map(role_map or {})
        self.required_claims: Mapping[str, Any] = MappingProxyType(
            dict(
                self.preset.required_claims
                if required_claims is None
                else required_claims
            )
        )
        self.check_azp = self.preset.check_azp
        if jwks is None:
            jwks = self._jwks_cache(jwks_uri or default_jwks)
        elif jwks_uri is not None:
            raise ConfigError(
                "Give either 'jwks_uri' or a JWKS cache, not both",
                key=self._key("jwks_uri"),
            )
        self.jwks = jwks

    def __repr__(self) -> str:
        return f"TokenIssuer({self.name!r}, issuer={self.issuer!r})"

    def _key(self, setting: str) -> str:
        return f"issuers.{self.name}.{setting}"

    def _jwks_cache(self, jwks_uri: str | None) -> JWKSCache:
        try:
            return JWKSCache(jwks_uri, issuer=self.issuer, name=self.name)
        except ConfigError as exc:
            raise ConfigError(exc.description, key=self._key("jwks_uri")) from None

    def _preset(self, preset: str | None) -> Preset:
        if preset is None:
            return GENERIC
        try:
            return PRESETS[preset]
        except KeyError:
            raise ConfigError(
                f"Unknown preset {preset!r}; expected one of "
                + ", ".join(sorted(PRESETS)),
                key=self._key("preset"),
            ) from None

    def _issuer(self, issuer: str | None) -> tuple[str, tuple[str, ...], str | None]:
        preset = self.preset
        if preset.issuer is not None:
            if issuer is None or issuer in (preset.issuer, *preset.aliases):
                return preset.issuer, preset.aliases, preset.jwks_uri
            raise ConfigError(
                f"The {preset.name} preset's issuer is {preset.issuer!r}, "
                f"not {issuer!r}",
                key=self._key("issuer"),
            )
        if not issuer:
            raise ConfigError(
                "An issuer URL is required (the exact 'iss' of its tokens)",
                key=self._key("issuer"),
            )
        require_https(issuer, self._key("issuer"))
        if preset.name == "entra":
            aliases, jwks = _entra_forms(issuer)
            return issuer, aliases, jwks
        return issuer, (), None

    def _audiences(self, audiences: Iterable[str]) -> frozenset[str]:
        if isinstance(audiences, str):
            audiences = [audiences]
        values = list(audiences)
        if not values or not all(isinstance(a, str) and a for a in values):
            raise ConfigError(
                "At least one audience (non-empty string) is required: "
                "without it, tokens minted for any other service would pass",
                key=self._key("audiences"),
            )
        pattern = self.preset.audience_pattern
        for audience in values:
            if pattern is not None and not pattern.fullmatch(audience):
                raise ConfigError(
                    f"IAP audience {audience!r} does not have one of the forms "
                    "/projects/NUMBER/global/backendServices/ID, "
                    "/projects/NUMBER/apps/PROJECT_ID or "
                    "/projects/NUMBER/locations/REGION/services/SERVICE",
                    key=self._key("audiences"),
                )
        return frozenset(values)

    def _algorithms(self, algorithms: Iterable[str] | None) -> frozenset[str]:
        if isinstance(algorithms, str):
            algorithms = [algorithms]
        names = list(self.preset.algorithms if algorithms is None else algorithms)
        if not names:
            raise ConfigError(
                "At least one algorithm is required", key=self._key("algorithms")
            )
        for name in names:
            if name not in ALGORITHMS:
                raise ConfigError(
                    f"Algorithm {name!r} is not accepted; expected asymmetric "
                    "ones (keys come from a public JWKS): " + ", ".join(ALGORITHMS),
                    key=self._key("algorithms"),
                )
        return frozenset(names)

    def _non_negative(self, setting: str, value: int) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ConfigError(
                f"Expected a whole number of at least 0, got {value!r}",
                key=self._key(setting),
            )
        return value

    def _role_claims(
        self, role_claims: Iterable[str] | None
    ) -> tuple[tuple[tuple[str, ...], bool], ...]:
        if role_claims is None:
            paths = list(self.preset.role_claims)
            if self.preset.name == "keycloak":
                paths += [f"resource_access.{a}.roles" for a in sorted(self.audiences)]
        else:
            if isinstance(role_claims, str):
                role_claims = [role_claims]
            paths = list(role_claims)
        compiled = []
        for path in paths:
            parts = tuple(path.split("."))
            if not all(parts):
                raise ConfigError(
                    f"Role claim path {path!r} has an empty part",
                    key=self._key("role_claims"),
                )
            compiled.append((parts, parts[-1] in _SPLIT_CLAIMS))
        return tuple(compiled)

    def _role_map(
        self, role_map: Mapping[str, Iterable[str]]
    ) -> Mapping[str, frozenset[str]]:
        compiled: dict[str, frozenset[str]] = {}
        for source, roles in role_map.items():
            if isinstance(roles, str) or not all(isinstance(r, str) for r in roles):
                raise ConfigError(
                    f"Expected a list of role names for {source!r}",
                    key=self._key(f"role_map.{source}"),
                )
            compiled[str(source)] = frozenset(roles)
        return MappingProxyType(compiled)

    def check_claims(
        self, claims: Mapping[str, Any], header: Mapping[str, Any], now: float
    ) -> str:
        """Check the claims against this issuer's policy at time ``now``.

        :param claims: the token payload.
        :param header: the token header (its ``typ`` tells access tokens).
        :return: the principal name.
        :raises InvalidTokenError: naming the first claim that fails.
        """
        try:
            return self._check_claims(claims, header, now)
        except _Reject as exc:
            raise InvalidTokenError(exc.reason, exc.description) from None

    def _check_claims(
        self, claims: Mapping[str, Any], header: Mapping[str, Any], now: float
    ) -> str:
        leeway = self.leeway
        exp = _numeric_date(claims, "exp")
        iat = _numeric_date(claims, "iat")
        if now >= exp + leeway:
            raise _Reject("token_expired", f"Claim 'exp' ({exp}) has passed")
        if iat > now + leeway:
            raise _Reject("token_issued_in_future", f"Claim 'iat' ({iat}) is ahead")
        if "nbf" in claims:
            nbf = _numeric_date(claims, "nbf")
            if nbf > now + leeway:
                raise _Reject("token_not_yet_valid", f"Claim 'nbf' ({nbf}) is ahead")
        self._check_audience(claims, header)
        for name, expected in self.required_claims.items():
            if name not in claims or not _same(claims[name], expected):
                raise _Reject(
                    "required_claim_mismatch",
                    f"Claim {name!r} must be {expected!r}",
                )
        principal = claims.get(self.principal_claim)
        if not isinstance(principal, str) or not principal:
            raise _Reject(
                "principal_missing",
                f"Claim {self.principal_claim!r} is missing or not a string",
            )
        return principal

    def _check_audience(
        self, claims: Mapping[str, Any], header: Mapping[str, Any]
    ) -> None:
        aud = claims.get("aud")
        if isinstance(aud, str):
            if aud not in self.audiences:
                raise _Reject("audience_mismatch", "Claim 'aud' names another service")
            return
        if aud is None:
            raise _Reject("claim_missing", "Claim 'aud' is missing")
        if (
            not isinstance(aud, list)
            or not aud
            or not all(isinstance(a, str) for a in aud)
        ):
            raise _Reject(
                "audience_mismatch", "Claim 'aud' is not a string or list of strings"
            )
        if self.audiences.isdisjoint(aud):
            raise _Reject("audience_mismatch", "Claim 'aud' names other services")
        typ = header.get("typ")
        access_token = isinstance(typ, str) and typ.lower() in _ACCESS_TOKEN_TYPES
        # OpenID Connect Core 3.1.3.7: an ID token for several audiences is
        # only ours if its authorized party is.
        if (
            len(aud) > 1
            and self.check_azp
            and not access_token
            and claims.get("azp") not in self.audiences
        ):
            raise _Reject(
                "azp_mismatch",
                "Claim 'azp' must name this service when 'aud' has several",
            )

    def roles_for(self, claims: Mapping[str, Any], principal: str) -> frozenset[str]:
        """Return the roles of a verified token: role claims plus ``role_map``."""
        roles: set[str] = set()
        for path, split in self.role_claims:
            _add_claim_strings(roles, claims, path, split)
        if not self.role_map:
            return frozenset(roles)
        granted: set[str] = set()
        role_map = self.role_map
        sources: list[str] = [principal, *roles]
        for name in self.map_claims:
            value = claims.get(name)
            if isinstance(value, str):
                sources.append(value)
        for source in sources:
            mapped = role_map.get(source)
            if mapped:
                granted |= mapped
        return frozenset(roles | granted)

    def role_sources(
        self, claims: Mapping[str, Any], principal: str
    ) -> dict[str, list[str]]:
        """Return, for each role :meth:`roles_for` grants, where it came from.

        For explanations (``securityhandler explain``): sources read
        ``claim 'realm_access.roles'`` or ``role_map['alice']``.
        """
        sources: dict[str, list[str]] = {}
        values: list[str] = [principal]
        for path, split in self.role_claims:
            found: set[str] = set()
            _add_claim_strings(found, claims, path, split)
            for role in sorted(found):
                sources.setdefault(role, []).append(f"claim {'.'.join(path)!r}")
                values.append(role)
        values += [v for v in map(claims.get, self.map_claims) if isinstance(v, str)]
        for value in dict.fromkeys(values):
            for role in sorted(self.role_map.get(value, ())):
                sources.setdefault(role, []).append(f"role_map[{value!r}]")
        return sources


def _numeric_date(claims: Mapping[str, Any], name: str) -> float:
    value = claims.get(name)
    if value is None:
        if name in claims:
            raise _Reject("invalid_numeric_date", f"Claim {name!r} is null")
        raise _Reject("claim_missing", f"Claim {name!r} is missing")
    if type(value) is not int and type(value) is not float:
        raise _Reject(
            "invalid_numeric_date",
            f"Claim {name!r} is a {type(value).__name__}, not a NumericDate",
        )
    return value


def _same(actual: object, expected: object) -> bool:
    if isinstance(actual, bool) or isinstance(expected, bool):
        return type(actual) is type(expected) and actual == expected
    return actual == expected


def _add_claim_strings(
    roles: set[str], claims: Mapping[str, Any], path: tuple[str, ...], split: bool
) -> None:
    """Add the strings at ``path`` of ``claims`` to ``roles``."""
    value: Any = claims
    for part in path:
        if not isinstance(value, Mapping):
            return
        value = value.get(part)
    if value is None:
        return
    if type(value) is str:
        roles.update(value.split() if split else (value,))
    elif type(value) is list:
        roles.update(item for item in value if type(item) is str)
    roles.discard("")


# --- the login service ---------------------------------------------------------------


class _Parsed(NamedTuple):
    header: dict[str, Any]
    claims: dict[str, Any]
    signing_input: str
    signature: bytes | None
    alg: str
    kid: str | None


class _Entry(NamedTuple):
    identity: UserIdentity
    expires: float
    issuer: TokenIssuer
    keyset: KeySet


class TokenLoginService:
    """Verify JWTs from a set of issuers and turn them into identities.

    :param name: the name in configuration and log records.
    :param issuers: the issuers whose tokens are accepted; each ``iss`` value
        may belong to one issuer only.
    :param clock: the time source for claims and key caches, ``time.time``
        by default (read at each call, so freezegun applies).
    :param cache_size: how many verified tokens are remembered (LRU).
    :raises ConfigError: for no issuers, or two claiming the same ``iss``.
    """

    def __init__(
        self,
        name: str,
        issuers: Sequence[TokenIssuer],
        *,
        clock: Callable[[], float] | None = None,
        cache_size: int = DEFAULT_CACHE_SIZE,
    ) -> None:
        self.name = name
        self.issuers = tuple(issuers)
        if not self.issuers:
            raise ConfigError("At least one issuer is required", key="issuers")
        self._by_iss: dict[str, TokenIssuer] = {}
        for issuer in self.issuers:
            for iss in issuer.issuers:
                other = self._by_iss.setdefault(iss, issuer)
                if other is not issuer:
                    raise ConfigError(
                        f"Issuers {other.name!r} and {issuer.name!r} both accept "
                        f"'iss' {iss!r}",
                        key=f"issuers.{issuer.name}.issuer",
                    )
            if clock is not None:
                issuer.jwks.clock = clock
        self.clock: Callable[[], float] = clock or now
        self.max_token_bytes = max(i.max_token_bytes for i in self.issuers)
        self.cache_size = cache_size
        self._cache: OrderedDict[str, _Entry] = OrderedDict()
        self._headers: dict[bytes, tuple[dict[str, Any], str, str | None]] = {}

    def __repr__(self) -> str:
        return f"TokenLoginService({self.name!r}, {list(self.issuers)!r})"

    def roles(self) -> frozenset[str]:
        """Return every role the issuers' ``role_map`` can grant."""
        roles: set[str] = set()
        for issuer in self.issuers:
            for granted in issuer.role_map.values():
                roles |= granted
        return frozenset(roles)

    def verify(self, token: str, *, auth_type: str = "BEARER") -> UserIdentity:
        """Verify a signed token in full and return its identity.

        :param token: the compact JWS, as sent.
        :param auth_type: the ``AUTH_TYPE`` of the identity.
        :raises InvalidTokenError: with the audit reason of the first failure.
        :raises KeysUnavailableError: when the issuer's keys cannot be had.
        """
        identity = self.cached(token, auth_type=auth_type)
        if identity is not None:
            return identity

        parsed = self._parse(token, signed=True)
        issuer = self._issuer_of(token, parsed)
        principal = self._check_claims(issuer, parsed)
        keyset = self._check_signature(issuer, parsed, principal)
        identity = self._identity(issuer, parsed, principal, auth_type)
        self._remember(token, identity, issuer, keyset, parsed.claims["exp"])
        return identity

    def cached(self, token: str, *, auth_type: str = "BEARER") -> UserIdentity | None:
        """Return the identity of a token verified before and still valid.

        A token is only ever cached after passing every check of
        :meth:`verify`, so a hit needs no parsing: only the expiry and the
        key set are checked again.

        :raises InvalidTokenError: when a cached token has expired.
        """
        entry = self._cache.get(token)
        if entry is None:
            return None
        identity = self._cache_hit(token, entry)
        if identity is not None and identity.auth_type != auth_type:
            identity = replace(identity, auth_type=auth_type)
        return identity

    def verify_unsigned(self, token: str, *, auth_type: str = "BEARER") -> UserIdentity:
        """Check a token whose signature a trusted proxy verified and removed.

        Everything of :meth:`verify` but the key and the signature: this is
        for Cloud Run's ``X-Serverless-Authorization``, which reaches the
        container only after Cloud Run's invoker IAM check and with its
        signature stripped. Never use it for a token a client sent directly.

        :raises InvalidTokenError: with the audit reason of the first failure.
        """
        parsed = self._parse(token, signed=False)
        issuer = self._issuer_of(token, parsed)
        principal = self._check_claims(issuer, parsed)
        return self._identity(issuer, parsed, principal, auth_type)

    def _cache_hit(self, token: str, entry: _Entry) -> UserIdentity | None:
        if self.clock() >= entry.expires:
            self._cache.pop(token, None)
            identity = entry.identity
            raise InvalidTokenError(
                "token_expired",
                "Claim 'exp' has passed",
                issuer=identity.issuer,
                kid=identity.kid,
                principal=identity.name,
            )
        if entry.issuer.jwks.current() is not entry.keyset:
            # The keys changed: verify again against the new set.
            self._cache.pop(token, None)
            return None
        # Not contextlib.suppress: this is the hot path of a cached token.
        try:  # noqa: SIM105
            self._cache.move_to_end(token)
        except KeyError:
            pass  # evicted meanwhile by another thread
        return entry.identity

    def _remember(
        self,
        token: str,
        identity: UserIdentity,
        issuer: TokenIssuer,
        keyset: KeySet,
        exp: float,
    ) -> None:
        if self.cache_size <= 0:
            return
        cache = self._cache
        cache[token] = _Entry(identity, exp + issuer.leeway, issuer, keyset)
        while len(cache) > self.cache_size:
            try:
                cache.popitem(last=False)
            except KeyError:
                break

    def _parse(self, token: str, *, signed: bool) -> _Parsed:
        if len(token) > self.max_token_bytes:
            _refuse("token_too_large", f"Token over {self.max_token_bytes} bytes")
        segments = _split_compact(token, signed=signed)
        header_segment, payload_segment = segments[0], segments[1]
        header, alg, kid = self._read_header(header_segment)
        claims = _decode_json(payload_segment, "payload", kid=kid)
        signature = None
        if signed:
            try:
                signature = _b64decode(segments[2])
            except binascii.Error:
                _refuse("malformed_token", "Token signature is not base64url", kid)
        return _Parsed(
            header,
            claims,
            token[: len(header_segment) + 1 + len(payload_segment)],
            signature,
            alg,
            kid,
        )

    def _read_header(self, segment: bytes) -> tuple[dict[str, Any], str, str | None]:
        """Decode and check a JOSE header; return it with its ``alg`` and ``kid``.

        Every token an issuer signs with one key carries the same header
        segment, so accepted headers are remembered (a few dozen at most);
        a refused one is decoded again each time, and refused again.
        """
        known = self._headers.get(segment)
        if known is not None:
            return known
        header = _decode_json(segment, "header")
        kid = header.get("kid")
        if kid is not None and not isinstance(kid, str):
            _refuse("malformed_token", "Header 'kid' is not a string")
        try:
            alg = _check_header(header)
        except _Reject as exc:
            raise InvalidTokenError(exc.reason, exc.description, kid=kid) from None
        if len(self._headers) >= _HEADER_CACHE_SIZE:
            self._headers.clear()
        self._headers[segment] = (header, alg, kid)
        return header, alg, kid

    def _issuer_of(self, token: str, parsed: _Parsed) -> TokenIssuer:
        iss = parsed.claims.get("iss")
        issuer = self._by_iss.get(iss) if isinstance(iss, str) else None
        if issuer is None:
            raise InvalidTokenError(
                "issuer_unknown",
                "Claim 'iss' is missing or names no configured issuer",
                issuer=_clip(iss),
                kid=parsed.kid,
            )
        if len(token) > issuer.max_token_bytes:
            self._fail(
                issuer,
                parsed,
                "token_too_large",
                f"Token over {issuer.max_token_bytes} bytes",
            )
        if parsed.alg not in issuer.algorithms:
            self._fail(
                issuer,
                parsed,
                "algorithm_not_allowed",
                f"Header 'alg' {_clip(parsed.alg)!r} is not allowed for this issuer",
            )
        return issuer

    def _check_claims(self, issuer: TokenIssuer, parsed: _Parsed) -> str:
        try:
            return issuer._check_claims(parsed.claims, parsed.header, self.clock())
        except _Reject as exc:
            self._fail(issuer, parsed, exc.reason, exc.description)

    def _check_signature(
        self, issuer: TokenIssuer, parsed: _Parsed, principal: str
    ) -> KeySet:
        kid, alg = parsed.kid, parsed.alg
        key, keyset = issuer.jwks.lookup(kid, alg)
        if key is None:
            if kid is None:
                reason, detail = "unknown_kid", "Header 'kid' is missing"
            elif kid in keyset:
                reason = "key_algorithm_mismatch"
                detail = f"Key {kid!r} does not fit algorithm {alg!r}"
            else:
                reason, detail = "unknown_kid", f"No key {_clip(kid)!r} in the JWKS"
            self._fail(issuer, parsed, reason, detail, principal)
        assert parsed.signature is not None
        try:
            valid = _ALG_MODELS[alg].verify(
                parsed.signing_input.encode("ascii"), parsed.signature, key.key
            )
        except ValueError:
            valid = False
        if not valid:
            self._fail(
                issuer, parsed, "bad_signature", "Signature does not verify", principal
            )
        return keyset

    def _identity(
        self, issuer: TokenIssuer, parsed: _Parsed, principal: str, auth_type: str
    ) -> UserIdentity:
        claims = parsed.claims
        return UserIdentity(
            principal,
            issuer.roles_for(claims, principal),
            auth_type,
            claims["iss"],
            MappingProxyType(claims),
            parsed.kid,
        )

    def _fail(
        self,
        issuer: TokenIssuer,
        parsed: _Parsed,
        reason: str,
        description: str,
        principal: str | None = None,
    ) -> NoReturn:
        if principal is None:
            claimed = parsed.claims.get(issuer.principal_claim)
            principal = _clip(claimed) if isinstance(claimed, str) else None
        raise InvalidTokenError(
            reason,
            description,
            issuer=_clip(parsed.claims.get("iss")),
            kid=_clip(parsed.kid),
            principal=principal,
        )


def _refuse(reason: str, description: str, kid: str | None = None) -> NoReturn:
    raise InvalidTokenError(reason, description, kid=_clip(kid))


def _clip(value: object) -> str | None:
    """Return a claimed string short enough for a log record."""
    if not isinstance(value, str):
        return None
    return value if len(value) <= _MAX_FIELD else value[:_MAX_FIELD] + "..."


def _split_compact(token: str, *, signed: bool) -> list[bytes]:
    """Split a compact JWS into its base64url segments, refusing any other shape.

    Signed: exactly three non-empty segments. Stripped by Cloud Run
    (``signed=False``): two, optionally followed by a dot and a signature.
    The alphabet is checked with one ``bytes.translate`` pass, several times
    cheaper than a regular expression over a token of a kilobyte.
    """
    try:
        data = token.encode("ascii")
    except UnicodeEncodeError:
        _refuse("malformed_token", "Token is not three base64url segments")
    segments = data.split(b".")
    if data.translate(None, _BASE64URL_AND_DOT):
        _refuse("malformed_token", "Token is not three base64url segments")
    if len(segments) == 5 and b"" not in (segments[0], *segments[2:]):
        _refuse("encrypted_token", "Token is a JWE; only signed JWTs are read")
    if b"" in segments[:2]:
        _refuse("malformed_token", "Token is not three base64url segments")
    if signed:
        if len(segments) != 3 or not segments[2]:
            _refuse("malformed_token", "Token is not three base64url segments")
    elif len(segments) not in (2, 3):
        _refuse("malformed_token", "Token is not two or three base64url segments")
    return segments


def _b64decode(segment: bytes) -> bytes:
    """Decode a base64url segment already matched against the strict alphabet.

    Refuses non-canonical encodings: a length that no byte string has, or
    set padding bits in the last character (RFC 4648 3.5).
    """
    pad = -len(segment) % 4
    if pad == 3 or (pad and segment[-1] not in _CANONICAL_LAST[pad]):
        raise binascii.Error("Non-canonical base64url")
    return binascii.a2b_base64(segment.translate(_URLSAFE) + _PADS[pad])


def _decode_json(segment: bytes, part: str, kid: str | None = None) -> dict[str, Any]:
    try:
        value = loads_strict(_b64decode(segment))
    except StrictJSONError as exc:
        _refuse(exc.reason, f"Token {part}: {exc.description}", kid)
    except (ValueError, RecursionError, binascii.Error):
        _refuse("malformed_token", f"Token {part} is not base64url of JSON", kid)
    if not isinstance(value, dict):
        _refuse("malformed_token", f"Token {part} is not a JSON object", kid)
    return value


def _check_header(header: Mapping[str, Any]) -> str:
    """Return ``alg`` after refusing headers this library does not process."""
    alg = header.get("alg")
    if not isinstance(alg, str):
        raise _Reject("malformed_token", "Header 'alg' is missing or not a string")
    if "crit" in header:
        # RFC 7515 4.1.11: extensions we do not understand must be refused;
        # we understand none.
        raise _Reject("unsupported_critical_header", "Header 'crit' is not supported")
    if header.get("b64", True) is not True:
        raise _Reject("unencoded_payload", "Header 'b64' (RFC 7797) is not supported")
    if "cty" in header:
        raise _Reject("nested_token", "Header 'cty' marks a nested token")
    typ = header.get("typ")
    if typ is not None and (
        not isinstance(typ, str) or typ.lower() not in _TOKEN_TYPES
    ):
        raise _Reject(
            "unexpected_token_type", f"Header 'typ' {_clip(typ)!r} is not JWT"
        )
    return alg
