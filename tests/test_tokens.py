"""Token issuers, presets, claims, roles and the verified-token cache.

Preset claim sets under ``tests/data/tokens`` are shaped like real Google,
IAP, Okta, Entra ID and Keycloak tokens; they are signed here with a local
key served over loopback, and checked at a frozen time just after their
``iat``.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest
from freezegun import freeze_time
from freezegun.api import FrozenDateTimeFactory

from securityhandler.errors import ConfigError
from securityhandler.identity import UserIdentity
from securityhandler.jwks import fetch_document, loads_strict
from securityhandler.testing import LocalIssuer
from securityhandler.tokens import InvalidTokenError, TokenIssuer, TokenLoginService

DATA = Path(__file__).parent / "data" / "tokens"
NOW = 1_900_000_000
TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
ENTRA_V1 = f"https://sts.windows.net/{TENANT}/"
ENTRA_V2 = f"https://login.microsoftonline.com/{TENANT}/v2.0"
CLOUD_RUN = "https://orders-4kq2xw7yva-ew.a.run.app"
IAP_BACKEND = "/projects/123456789012/global/backendServices/4567890123456789012"


def load(name: str) -> dict[str, Any]:
    claims: dict[str, Any] = json.loads((DATA / f"{name}.json").read_text())
    return claims


def at(timestamp: float) -> datetime:
    return datetime.fromtimestamp(timestamp, tz=timezone.utc)


@pytest.fixture
def frozen() -> Iterator[FrozenDateTimeFactory]:
    with freeze_time(at(NOW)) as factory:
        yield factory


def payload_of(token: str) -> dict[str, Any]:
    segment = token.split(".")[1]
    data: dict[str, Any] = json.loads(base64.urlsafe_b64decode(segment + "=="))
    return data


def verify_claims(
    issuer: LocalIssuer, config: dict[str, Any], claims: dict[str, Any], alg: str
) -> UserIdentity:
    """Sign ``claims`` with a local key for ``alg`` and verify them at iat+60."""
    kid = issuer.add_key(alg)
    token = issuer.sign({"alg": alg, "typ": "JWT", "kid": kid}, claims, kid=kid)
    service = TokenLoginService(
        "t", [TokenIssuer("t", jwks_uri=issuer.jwks_uri, **config)]
    )
    with freeze_time(at(claims["iat"] + 60)):
        return service.verify(token)


# --- presets on real-shaped tokens ---------------------------------------------

PRESET_CASES = [
    pytest.param(
        "google_service_account",
        {
            "preset": "google",
            "audiences": [CLOUD_RUN],
            "role_map": {"deployer@orders-prod.iam.gserviceaccount.com": ["writer"]},
        },
        "RS256",
        "deployer@orders-prod.iam.gserviceaccount.com",
        {"writer"},
        id="google-service-account-allow-list",
    ),
    pytest.param(
        "google_user",
        {
            "preset": "google",
            "audiences": [CLOUD_RUN],
            "role_map": {"example.com": ["staff"]},
        },
        "RS256",
        "alice@example.com",
        {"staff"},
        id="google-user-bare-issuer-hosted-domain",
    ),
    pytest.param(
        "iap",
        {"preset": "iap", "audiences": [IAP_BACKEND]},
        "ES256",
        "alice@example.com",
        set(),
        id="iap",
    ),
    pytest.param(
        "okta_access",
        {
            "preset": "okta",
            "issuer": "https://example.okta.com/oauth2/default",
            "audiences": ["api://orders"],
            "role_map": {"0oa1b2c3d4e5f6g7h8i9": ["orders-client"]},
        },
        "RS256",
        "alice@example.com",
        {
            "openid",
            "orders:read",
            "orders:write",
            "Everyone",
            "orders-admins",
            "orders-client",
        },
        id="okta-scp-groups-cid",
    ),
    pytest.param(
        "entra_v2",
        {
            "preset": "entra",
            "issuer": ENTRA_V2,
            "audiences": ["6e74172b-be56-4843-9ff4-e66a39bb12e3"],
        },
        "RS256",
        "690222be-ff1a-4d56-abd1-7e4f7d38e474",
        {"Orders.Admin", "Orders.Read", "Orders.Write"},
        id="entra-v2-roles-and-scp-string",
    ),
    pytest.param(
        "entra_v1_app",
        {
            "preset": "entra",
            "issuer": ENTRA_V2,
            "audiences": ["api://orders"],
            "role_map": {"9b8d1f2e-3c4a-4b5d-8e6f-7a8b9c0d1e2f": ["sync"]},
        },
        "RS256",
        "0b7a2f3c-4d5e-46f7-8a9b-0c1d2e3f4a5b",
        {"Orders.Sync", "sync"},
        id="entra-v1-app-token-on-v2-issuer",
    ),
    pytest.param(
        "keycloak_access",
        {
            "preset": "keycloak",
            "issuer": "https://sso.example.com/realms/orders",
            "audiences": ["orders-api"],
        },
        "RS256",
        "alice",
        {"offline_access", "uma_authorization", "orders-admin", "writer"},
        id="keycloak-realm-and-own-client-roles",
    ),
]


@pytest.mark.parametrize(("name", "config", "alg", "principal", "roles"), PRESET_CASES)
def test_preset_extracts_principal_and_roles(
    local_issuer: LocalIssuer,
    name: str,
    config: dict[str, Any],
    alg: str,
    principal: str,
    roles: set[str],
) -> None:
    claims = load(name)
    identity = verify_claims(local_issuer, config, claims, alg)
    assert (identity.name, identity.roles) == (principal, frozenset(roles))
    assert identity.issuer == claims["iss"]


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        pytest.param({"email_verified": False}, "required_claim_mismatch", id="false"),
        pytest.param(
            {"email_verified": "true"}, "required_claim_mismatch", id="string-true"
        ),
        pytest.param({"email_verified": None}, "required_claim_mismatch", id="null"),
        pytest.param({"email": None}, "principal_missing", id="no-email"),
    ],
)
def test_google_preset_requires_verified_email(
    local_issuer: LocalIssuer, changes: dict[str, Any], reason: str
) -> None:
    claims = {**load("google_user"), **changes}
    claims = {k: v for k, v in claims.items() if v is not None}
    config = {"preset": "google", "audiences": [CLOUD_RUN]}
    with pytest.raises(InvalidTokenError) as raised:
        verify_claims(local_issuer, config, claims, "RS256")
    assert raised.value.reason == reason


def test_google_preset_refuses_other_algorithms(local_issuer: LocalIssuer) -> None:
    config = {"preset": "google", "audiences": [CLOUD_RUN]}
    with pytest.raises(InvalidTokenError) as raised:
        verify_claims(local_issuer, config, load("google_user"), "ES256")
    assert raised.value.reason == "algorithm_not_allowed"


def test_keycloak_other_client_roles_not_granted(local_issuer: LocalIssuer) -> None:
    config = {
        "preset": "keycloak",
        "issuer": "https://sso.example.com/realms/orders",
        "audiences": ["account"],
    }
    identity = verify_claims(local_issuer, config, load("keycloak_access"), "RS256")
    assert "manage-account" in identity.roles
    assert "writer" not in identity.roles


def test_entra_preset_accepts_both_issuer_versions() -> None:
    issuer = TokenIssuer("e", preset="entra", issuer=ENTRA_V1, audiences=["api://x"])
    assert issuer.issuers == frozenset({ENTRA_V1, ENTRA_V2})
    assert issuer.jwks.jwks_uri == (
        f"https://login.microsoftonline.com/{TENANT}/discovery/v2.0/keys"
    )


def test_google_preset_fixed_issuer_and_keys() -> None:
    issuer = TokenIssuer("g", preset="google", audiences=[CLOUD_RUN])
    assert issuer.issuers == frozenset(
        {"https://accounts.google.com", "accounts.google.com"}
    )
    assert issuer.jwks.jwks_uri == "https://www.googleapis.com/oauth2/v3/certs"


def test_iap_preset_fixed_issuer_and_keys() -> None:
    issuer = TokenIssuer("i", preset="iap", audiences=[IAP_BACKEND])
    assert (issuer.issuer, issuer.algorithms) == (
        "https://cloud.google.com/iap",
        frozenset({"ES256"}),
    )
    assert issuer.jwks.jwks_uri == "https://www.gstatic.com/iap/verify/public_key-jwk"


@pytest.mark.parametrize(
    "audience",
    [
        pytest.param(IAP_BACKEND, id="backend-service"),
        pytest.param("/projects/123456789012/apps/orders-prod", id="app-engine"),
        pytest.param(
            "/projects/123456789012/locations/europe-west1/services/orders",
            id="cloud-run",
        ),
    ],
)
def test_iap_audience_forms_accepted(audience: str) -> None:
    issuer = TokenIssuer("iap", preset="iap", audiences=[audience])
    assert issuer.audiences == frozenset({audience})


# --- configuration errors -----------------------------------------------------------

CONFIG_ERRORS = [
    pytest.param(
        {"issuer": "http://idp.example.test", "audiences": ["a"]},
        "issuer",
        id="issuer-http-remote",
    ),
    pytest.param({"audiences": ["a"]}, "issuer", id="issuer-missing"),
    pytest.param({"issuer": "https://i.test", "audiences": []}, "audiences", id="aud"),
    pytest.param(
        {"issuer": "https://i.test", "audiences": ["a"], "algorithms": ["HS256"]},
        "algorithms",
        id="alg-symmetric",
    ),
    pytest.param(
        {"issuer": "https://i.test", "audiences": ["a"], "algorithms": ["none"]},
        "algorithms",
        id="alg-none",
    ),
    pytest.param(
        {"issuer": "https://i.test", "audiences": ["a"], "preset": "auth0"},
        "preset",
        id="preset-unknown",
    ),
    pytest.param(
        {"preset": "iap", "audiences": [CLOUD_RUN]}, "audiences", id="iap-audience"
    ),
    pytest.param(
        {"preset": "google", "issuer": "https://evil.test", "audiences": ["a"]},
        "issuer",
        id="google-other-issuer",
    ),
    pytest.param(
        {"issuer": "https://i.test", "audiences": ["a"], "leeway": -1},
        "leeway",
        id="leeway-negative",
    ),
    pytest.param(
        {"issuer": "https://i.test", "audiences": ["a"], "role_map": {"x": "admin"}},
        "role_map.x",
        id="role-map-string",
    ),
    pytest.param(
        {"issuer": "https://i.test", "audiences": ["a"], "role_claims": ["a..b"]},
        "role_claims",
        id="role-path-empty-part",
    ),
    pytest.param(
        {
            "issuer": "https://i.test",
            "audiences": ["a"],
            "jwks_uri": "http://keys.example.test/jwks",
        },
        "jwks_uri",
        id="jwks-http-remote",
    ),
]


@pytest.mark.parametrize(("options", "key"), CONFIG_ERRORS)
def test_issuer_config_error_names_key(options: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError) as raised:
        TokenIssuer("corp", **options)
    assert raised.value.key == f"issuers.corp.{key}"


def test_two_issuers_same_iss_refused() -> None:
    issuers = [
        TokenIssuer(name, issuer="https://i.test", audiences=["a"])
        for name in ("one", "two")
    ]
    with pytest.raises(ConfigError, match="both accept"):
        TokenLoginService("s", issuers)


def test_loopback_http_issuer_accepted() -> None:
    issuer = TokenIssuer("dev", issuer="http://127.0.0.1:9000", audiences=["a"])
    assert issuer.jwks.issuer == "http://127.0.0.1:9000"


# --- claims and roles without the network ------------------------------------------


def issuer_for(**options: Any) -> TokenIssuer:
    options.setdefault("issuer", "https://i.test")
    options.setdefault("audiences", ["https://api.test"])
    return TokenIssuer("t", **options)


def claims_for(**changes: Any) -> dict[str, Any]:
    claims = {
        "iss": "https://i.test",
        "aud": "https://api.test",
        "sub": "alice",
        "iat": NOW,
        "exp": NOW + 300,
    }
    claims.update(changes)
    return claims


@pytest.mark.parametrize(
    ("required", "value"),
    [
        pytest.param(True, True, id="bool"),
        pytest.param("example.com", "example.com", id="string"),
        pytest.param(["a", "b"], ["a", "b"], id="list"),
    ],
)
def test_required_claim_equal_accepted(required: Any, value: Any) -> None:
    issuer = issuer_for(required_claims={"x": required})
    assert issuer.check_claims(claims_for(x=value), {}, NOW) == "alice"


@pytest.mark.parametrize(
    ("required", "value"),
    [
        pytest.param(True, 1, id="one-is-not-true"),
        pytest.param(1, True, id="true-is-not-one"),
        pytest.param(False, 0, id="zero-is-not-false"),
        pytest.param("example.com", "evil.com", id="string-other"),
        pytest.param(True, None, id="null"),
    ],
)
def test_required_claim_differing_refused(required: Any, value: Any) -> None:
    issuer = issuer_for(required_claims={"x": required})
    with pytest.raises(InvalidTokenError, match="Claim 'x'") as raised:
        issuer.check_claims(claims_for(x=value), {}, NOW)
    assert raised.value.reason == "required_claim_mismatch"


def test_access_token_with_several_audiences_skips_azp() -> None:
    issuer = issuer_for()
    claims = claims_for(aud=["https://api.test", "https://other.test"], azp="web")
    assert issuer.check_claims(claims, {"typ": "at+jwt"}, NOW) == "alice"


def test_id_token_with_several_audiences_needs_our_azp() -> None:
    issuer = issuer_for()
    claims = claims_for(aud=["https://api.test", "x"], azp="https://api.test")
    assert issuer.check_claims(claims, {"typ": "JWT"}, NOW) == "alice"


@pytest.mark.parametrize(
    ("role_claims", "claims", "roles"),
    [
        pytest.param(
            ["scope"], {"scope": "read  write"}, {"read", "write"}, id="scope"
        ),
        pytest.param(["scp"], {"scp": ["a", "b"]}, {"a", "b"}, id="scp-list"),
        pytest.param(["roles"], {"roles": "admin"}, {"admin"}, id="string"),
        pytest.param(
            ["roles"], {"roles": "admin writer"}, {"admin writer"}, id="no-split"
        ),
        pytest.param(["a.b.roles"], {"a": {"b": {"roles": ["x"]}}}, {"x"}, id="dotted"),
        pytest.param(["a.b"], {"a": ["b"]}, set(), id="path-through-list"),
        pytest.param(
            ["roles"], {"roles": ["x", 1, None, {"y": 1}, ""]}, {"x"}, id="non-strings"
        ),
        pytest.param(["missing"], {}, set(), id="missing"),
    ],
)
def test_role_claims_extracted(
    role_claims: list[str], claims: dict[str, Any], roles: set[str]
) -> None:
    issuer = issuer_for(role_claims=role_claims)
    assert issuer.roles_for(claims_for(**claims), "alice") == frozenset(roles)


def test_role_claims_read_from_read_only_claims() -> None:
    # UserIdentity.claims is a read-only mapping, not a dict.
    issuer = issuer_for(role_claims=["realm_access.roles"])
    claims = MappingProxyType(claims_for(realm_access={"roles": ["ops"]}))
    assert issuer.roles_for(claims, "alice") == frozenset({"ops"})


def test_role_map_from_principal_and_role_values() -> None:
    issuer = issuer_for(
        role_claims=["groups"],
        role_map={"alice": ["owner"], "eng": ["writer"], "other": ["nope"]},
    )
    roles = issuer.roles_for(claims_for(groups=["eng"]), "alice")
    assert roles == frozenset({"eng", "owner", "writer"})


def test_role_map_ignores_claims_a_user_may_set() -> None:
    issuer = issuer_for(role_claims=[], role_map={"deployer@p.test": ["admin"]})
    claims = claims_for(name="deployer@p.test", nickname="deployer@p.test")
    assert issuer.roles_for(claims, "alice") == frozenset()


def test_role_sources_name_claim_and_map_entry() -> None:
    issuer = issuer_for(role_claims=["groups"], role_map={"alice": ["eng"]})
    sources = issuer.role_sources(claims_for(groups=["eng"]), "alice")
    assert sources == {"eng": ["claim 'groups'", "role_map['alice']"]}


def test_service_roles_lists_mapped_roles() -> None:
    issuer = issuer_for(role_map={"a": ["x", "y"], "b": ["z"]})
    assert TokenLoginService("s", [issuer]).roles() == frozenset({"x", "y", "z"})


# --- the service and its cache --------------------------------------------------------


@pytest.fixture
def service(
    frozen: FrozenDateTimeFactory, local_issuer: LocalIssuer
) -> TokenLoginService:
    return local_issuer.login_service()


def reason_of(service: TokenLoginService, token: str) -> str:
    with pytest.raises(InvalidTokenError) as raised:
        service.verify(token)
    return raised.value.reason


def test_cached_token_expiry_rechecked(
    frozen: FrozenDateTimeFactory, service: TokenLoginService, local_issuer: LocalIssuer
) -> None:
    token = local_issuer.mint(exp=NOW + 60)
    service.verify(token)
    frozen.tick(60 + 29)
    service.verify(token)
    frozen.tick(1)
    assert reason_of(service, token) == "token_expired"


def test_cached_token_dropped_when_kid_retired(
    frozen: FrozenDateTimeFactory, service: TokenLoginService, local_issuer: LocalIssuer
) -> None:
    token = local_issuer.mint(exp=NOW + 7200)
    service.verify(token)
    local_issuer.rotate()
    local_issuer.retire()
    frozen.tick(600)
    assert reason_of(service, token) == "unknown_kid"


def test_cached_token_survives_rotation_keeping_its_key(
    frozen: FrozenDateTimeFactory, service: TokenLoginService, local_issuer: LocalIssuer
) -> None:
    old = local_issuer.mint(exp=NOW + 7200)
    service.verify(old)
    local_issuer.rotate()
    frozen.tick(600)
    assert service.verify(old).kid != local_issuer.kid
    assert service.verify(local_issuer.mint()).kid == local_issuer.kid


def test_cached_identity_takes_requested_auth_type(
    service: TokenLoginService, local_issuer: LocalIssuer
) -> None:
    token = local_issuer.mint()
    service.verify(token)
    assert service.verify(token, auth_type="IAP").auth_type == "IAP"


def test_unsigned_check_never_vouches_for_signed_path(
    service: TokenLoginService, local_issuer: LocalIssuer
) -> None:
    header, payload, _ = local_issuer.mint().split(".")
    forged = f"{header}.{payload}.AAAA"
    assert service.verify_unsigned(forged).name == "test-user"
    assert reason_of(service, forged) == "bad_signature"


def test_issuer_size_cap_applies_to_its_tokens(
    frozen: FrozenDateTimeFactory, local_issuer: LocalIssuer
) -> None:
    small = local_issuer.token_issuer("small", max_token_bytes=1000)
    other = TokenIssuer("other", issuer="https://other.test", audiences=["a"])
    service = TokenLoginService("s", [small, other])
    assert reason_of(service, local_issuer.mint(pad="x" * 1000)) == "token_too_large"
    assert service.verify(local_issuer.mint()).name == "test-user"


def test_discovery_used_without_jwks_uri(
    service: TokenLoginService, local_issuer: LocalIssuer
) -> None:
    discovering = local_issuer.login_service(jwks_uri=None)
    discovering.verify(local_issuer.mint())
    assert (local_issuer.discovery_fetches, local_issuer.jwks_fetches) == (1, 1)


def test_eddsa_and_es256_keys_verify(
    frozen: FrozenDateTimeFactory, local_issuer: LocalIssuer
) -> None:
    service = local_issuer.login_service()
    kids = [local_issuer.add_key(alg) for alg in ("ES256", "EdDSA")]
    names = [service.verify(local_issuer.mint(sub=k, kid=k)).name for k in kids]
    assert names == kids


# --- the test kit ---------------------------------------------------------------------


def test_mint_fills_in_sane_defaults(
    frozen: FrozenDateTimeFactory, local_issuer: LocalIssuer
) -> None:
    claims = payload_of(local_issuer.mint(roles=["admin"]))
    assert claims == {
        "iss": local_issuer.issuer,
        "aud": local_issuer.audience,
        "sub": "test-user",
        "iat": NOW,
        "exp": NOW + 300,
        "roles": ["admin"],
    }


def test_mint_none_leaves_claim_out(local_issuer: LocalIssuer) -> None:
    assert "exp" not in payload_of(local_issuer.mint(exp=None))


def test_mint_token_fixture_is_local_issuer_mint(
    frozen: FrozenDateTimeFactory, local_issuer: LocalIssuer, mint_token: Any
) -> None:
    service = local_issuer.login_service()
    assert service.verify(mint_token(sub="bob")).name == "bob"


def test_local_issuer_serves_discovery(local_issuer: LocalIssuer) -> None:
    body, _ = fetch_document(local_issuer.discovery_uri, 5.0)
    document = loads_strict(body)
    assert (document["issuer"], document["jwks_uri"]) == (
        local_issuer.issuer,
        local_issuer.jwks_uri,
    )


def test_local_issuer_listens_on_loopback_only() -> None:
    with pytest.raises(ValueError, match="loopback"):
        LocalIssuer(host="0.0.0.0")  # noqa: S104 - the refused case
