"""Bearer and IAP authenticators through a real handler (issue 3, RFC 6750).

Every rejection goes through ``ConstraintSecurityHandler`` and the werkzeug
client: the status, the ``WWW-Authenticate`` header, the audit reason code,
and that the application was not called. Keys come from a
:class:`~securityhandler.testing.LocalIssuer` over real HTTP on loopback;
time is frozen with freezegun.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from typing import Any

import pytest
from freezegun import freeze_time
from freezegun.api import FrozenDateTimeFactory
from werkzeug.test import Client

from securityhandler.bearer import BearerAuthenticator, IapAuthenticator
from securityhandler.constraints import Constraint, ConstraintMapping
from securityhandler.errors import SecurityWarning
from securityhandler.handler import ConstraintSecurityHandler
from securityhandler.testing import LocalIssuer
from securityhandler.tokens import TokenIssuer, TokenLoginService

NOW = 1_900_000_000  # 2030-03-17, an arbitrary frozen instant
REALM = 'Bearer realm="orders"'
INVALID_TOKEN = 'Bearer realm="orders", error="invalid_token"'
INVALID_REQUEST = 'Bearer realm="orders", error="invalid_request"'
IAP_AUDIENCE = "/projects/123456789012/global/backendServices/987654321"


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def segment(obj: Any) -> str:
    return b64(json.dumps(obj).encode())


@pytest.fixture
def frozen() -> Iterator[FrozenDateTimeFactory]:
    with freeze_time(datetime.fromtimestamp(NOW, tz=timezone.utc)) as factory:
        yield factory


@pytest.fixture(autouse=True)
def _capture_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)


def audit_reasons(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.audit["reason"] for r in caplog.records if r.name == "securityhandler.audit"
    ]


def make_handler(
    app: Any, authenticator: Any, *, mappings: list[ConstraintMapping] | None = None
) -> ConstraintSecurityHandler:
    return ConstraintSecurityHandler(
        app,
        mappings
        or [
            ConstraintMapping(("/api/*",), Constraint.any_user()),
            ConstraintMapping(("/admin/*",), Constraint.with_roles("admin")),
            ConstraintMapping(("/open",), Constraint.allowed()),
        ],
        [authenticator],
        realm="orders",
    )


@pytest.fixture
def service(local_issuer: LocalIssuer) -> TokenLoginService:
    return local_issuer.login_service(role_claims=["roles"])


@pytest.fixture
def client(
    frozen: FrozenDateTimeFactory, service: TokenLoginService, recording_app: Any
) -> Client:
    return Client(make_handler(recording_app, BearerAuthenticator(service, "orders")))


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# --- success and the plain answers -------------------------------------------


def test_bearer_valid_token_reaches_app(
    client: Client, mint_token: Callable[..., str], recording_app: Any
) -> None:
    response = client.get("/api/orders", headers=bearer(mint_token(sub="alice")))
    assert response.status_code == 200
    assert recording_app.last.remote_user == "alice"
    assert recording_app.last.auth_type == "BEARER"


def test_bearer_identity_carries_issuer_claims_and_kid(
    client: Client,
    local_issuer: LocalIssuer,
    mint_token: Callable[..., str],
    recording_app: Any,
) -> None:
    recording_app.ask_identity = True
    client.get("/open", headers=bearer(mint_token(sub="alice", roles=["admin"])))
    identity = recording_app.last.identity
    assert (identity.issuer, identity.kid) == (local_issuer.issuer, local_issuer.kid)
    assert (identity.claims["sub"], identity.roles) == ("alice", frozenset({"admin"}))


def test_bearer_missing_token_challenges_without_error(
    client: Client, recording_app: Any, caplog: pytest.LogCaptureFixture
) -> None:
    response = client.get("/api/orders")
    assert response.status_code == 401
    assert response.headers.get_all("WWW-Authenticate") == [REALM]
    assert "no_credential" in audit_reasons(caplog)
    assert not recording_app.called


def test_bearer_other_scheme_is_not_a_bearer_failure(
    client: Client, recording_app: Any
) -> None:
    response = client.get("/api/orders", headers={"Authorization": "Basic YTpi"})
    assert response.headers.get_all("WWW-Authenticate") == [REALM]
    assert not recording_app.called


def test_bearer_missing_role_answers_insufficient_scope(
    client: Client,
    mint_token: Callable[..., str],
    recording_app: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    response = client.get("/admin/x", headers=bearer(mint_token(roles=["staff"])))
    assert response.status_code == 403
    assert response.headers["WWW-Authenticate"] == (
        'Bearer realm="orders", error="insufficient_scope"'
    )
    assert "missing_role" in audit_reasons(caplog)
    assert not recording_app.called


def test_bearer_role_from_token_passes_role_constraint(
    client: Client, mint_token: Callable[..., str]
) -> None:
    response = client.get("/admin/x", headers=bearer(mint_token(roles=["admin"])))
    assert response.status_code == 200


@pytest.mark.parametrize(
    "where",
    [
        pytest.param("query", id="query-string"),
        pytest.param("form", id="form-body"),
    ],
)
def test_bearer_token_outside_header_ignored(
    client: Client, mint_token: Callable[..., str], recording_app: Any, where: str
) -> None:
    token = mint_token()
    if where == "query":
        response = client.get(f"/api/orders?access_token={token}")
    else:
        response = client.post("/api/orders", data={"access_token": token})
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == REALM
    assert not recording_app.called


# --- malformed Authorization headers -----------------------------------------


@pytest.mark.parametrize(
    "header",
    [
        pytest.param("Bearer", id="scheme-only"),
        pytest.param("Bearer ", id="empty-token"),
        pytest.param("Bearer  {token}", id="two-spaces"),
        pytest.param("Bearer {token} ", id="trailing-space"),
        pytest.param("Bearer {token} {token}", id="two-tokens"),
        pytest.param("Bearer\t{token}", id="tab"),
        pytest.param("Bearer {token},x", id="comma"),
    ],
)
def test_bearer_malformed_header_is_invalid_request(
    client: Client,
    mint_token: Callable[..., str],
    recording_app: Any,
    caplog: pytest.LogCaptureFixture,
    header: str,
) -> None:
    value = header.format(token=mint_token())
    response = client.get("/api/orders", headers={"Authorization": value})
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == INVALID_REQUEST
    assert "malformed_authorization" in audit_reasons(caplog)
    assert not recording_app.called


def test_bearer_scheme_is_case_insensitive(
    client: Client, mint_token: Callable[..., str]
) -> None:
    response = client.get("/api/x", headers={"Authorization": "bEaReR " + mint_token()})
    assert response.status_code == 200


# --- every token rejection ---------------------------------------------------

Mint = Callable[[LocalIssuer], str]


def _tamper(li: LocalIssuer) -> str:
    header, _, signature = li.mint(sub="alice").split(".")
    return ".".join([header, li.mint(sub="mallory").split(".")[1], signature])


def _foreign_key(li: LocalIssuer) -> str:
    with LocalIssuer() as other:
        return other.mint(iss=li.issuer, aud=li.audience, headers={"kid": li.kid})


def _attacker_keys_in_header(li: LocalIssuer) -> str:
    # The attacker offers its own key every way JOSE allows; none is used.
    with LocalIssuer() as attacker:
        return attacker.mint(
            iss=li.issuer,
            aud=li.audience,
            headers={
                "jku": attacker.jwks_uri,
                "x5u": attacker.jwks_uri,
                "jwk": attacker.public_jwk(),
            },
        )


def _non_canonical(li: LocalIssuer) -> str:
    # Set an unused low bit of the last character: the same bytes decode,
    # from a second spelling of the token.
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    token = li.mint()
    return token[:-1] + alphabet[alphabet.index(token[-1]) | 1]


def _raw(header: Any, payload: Any) -> Mint:
    def mint(li: LocalIssuer) -> str:
        head = header(li) if callable(header) else header
        body = payload(li) if callable(payload) else payload
        return li.sign(head, body)

    return mint


def _claims(li: LocalIssuer, **changes: Any) -> dict[str, Any]:
    claims = {
        "iss": li.issuer,
        "aud": li.audience,
        "sub": "alice",
        "iat": NOW,
        "exp": NOW + 300,
    }
    claims.update(changes)
    return claims


def _header(li: LocalIssuer, **changes: Any) -> dict[str, Any]:
    return {"alg": "RS256", "kid": li.kid, **changes}


def _json_text(li: LocalIssuer, **replace: str) -> bytes:
    """Payload text with members spelled as given, for invalid JSON."""
    text = json.dumps(_claims(li))
    for name, raw in replace.items():
        text = text.replace(f'"{name}": {json.dumps(_claims(li)[name])}', raw)
    return text.encode()


REJECTIONS = [
    # Time (leeway 30 s).
    pytest.param(lambda li: li.mint(exp=NOW - 30), "token_expired", id="expired"),
    pytest.param(lambda li: li.mint(nbf=NOW + 31), "token_not_yet_valid", id="nbf"),
    pytest.param(
        lambda li: li.mint(iat=NOW + 31), "token_issued_in_future", id="iat-ahead"
    ),
    pytest.param(lambda li: li.mint(exp=None), "claim_missing", id="no-exp"),
    pytest.param(lambda li: li.mint(iat=None), "claim_missing", id="no-iat"),
    pytest.param(
        lambda li: li.mint(exp=str(NOW + 300)), "invalid_numeric_date", id="exp-string"
    ),
    pytest.param(lambda li: li.mint(exp=True), "invalid_numeric_date", id="exp-bool"),
    pytest.param(lambda li: li.mint(iat=False), "invalid_numeric_date", id="iat-bool"),
    pytest.param(
        lambda li: li.mint(nbf=str(NOW)), "invalid_numeric_date", id="nbf-string"
    ),
    # Audience, issuer, principal.
    pytest.param(
        lambda li: li.mint(aud="https://other.example.test"),
        "audience_mismatch",
        id="aud-other",
    ),
    pytest.param(
        lambda li: li.mint(aud=["https://a.test", "https://b.test"]),
        "audience_mismatch",
        id="aud-list-without-ours",
    ),
    pytest.param(lambda li: li.mint(aud=[]), "audience_mismatch", id="aud-empty"),
    pytest.param(lambda li: li.mint(aud=None), "claim_missing", id="no-aud"),
    pytest.param(
        lambda li: li.mint(aud=[li.audience, "https://b.test"], azp="https://b.test"),
        "azp_mismatch",
        id="azp-other",
    ),
    pytest.param(
        lambda li: li.mint(iss="https://evil.example.test"),
        "issuer_unknown",
        id="iss-unknown",
    ),
    pytest.param(lambda li: li.mint(iss=None), "issuer_unknown", id="no-iss"),
    pytest.param(lambda li: li.mint(sub=None), "principal_missing", id="no-sub"),
    pytest.param(lambda li: li.mint(sub=42), "principal_missing", id="sub-number"),
    # Keys and signatures.
    pytest.param(_tamper, "bad_signature", id="payload-swapped"),
    pytest.param(_foreign_key, "bad_signature", id="foreign-key-our-kid"),
    pytest.param(
        lambda li: li.mint(headers={"kid": "no-such-kid"}), "unknown_kid", id="kid"
    ),
    pytest.param(_attacker_keys_in_header, "unknown_kid", id="jku-x5u-jwk-ignored"),
    pytest.param(
        lambda li: li.mint(headers={"alg": "none"}),
        "algorithm_not_allowed",
        id="alg-none",
    ),
    pytest.param(
        lambda li: li.mint(headers={"alg": "HS256"}),
        "algorithm_not_allowed",
        id="alg-hs256",
    ),
    pytest.param(
        lambda li: li.mint(headers={"alg": "RS384"}),
        "algorithm_not_allowed",
        id="alg-not-listed",
    ),
    pytest.param(
        lambda li: li.mint(headers={"alg": "ES256"}),
        "key_algorithm_mismatch",
        id="alg-not-key-type",
    ),
    # Headers this library does not process.
    pytest.param(
        lambda li: li.mint(headers={"crit": ["exp"]}),
        "unsupported_critical_header",
        id="crit",
    ),
    pytest.param(
        lambda li: li.mint(headers={"b64": False}), "unencoded_payload", id="b64-false"
    ),
    pytest.param(
        lambda li: li.mint(headers={"cty": "JWT"}), "nested_token", id="cty-nested"
    ),
    pytest.param(
        lambda li: li.mint(headers={"typ": "dpop+jwt"}),
        "unexpected_token_type",
        id="typ-dpop",
    ),
    pytest.param(
        lambda li: li.mint(headers={"typ": "JWE"}),
        "unexpected_token_type",
        id="typ-jwe",
    ),
    # Shape and encoding.
    pytest.param(
        lambda li: ".".join([segment({"alg": "RSA-OAEP", "enc": "A256GCM"}), *"abcd"]),
        "encrypted_token",
        id="jwe-five-segments",
    ),
    pytest.param(
        lambda li: li.mint().rsplit(".", 1)[0], "malformed_token", id="two-segments"
    ),
    pytest.param(lambda li: li.mint() + ".x", "malformed_token", id="four-segments"),
    pytest.param(lambda li: li.mint() + "=", "malformed_token", id="padding"),
    pytest.param(
        lambda li: li.mint().replace("-", "+").replace("_", "/") + "+/",
        "malformed_token",
        id="std-alphabet",
    ),
    pytest.param(_non_canonical, "malformed_token", id="non-canonical-base64"),
    pytest.param(
        lambda li: "a" * 9000 + ".b.c", "token_too_large", id="oversized-garbage"
    ),
    pytest.param(
        lambda li: li.mint(pad="x" * 8200), "token_too_large", id="oversized-claims"
    ),
    # JSON that two parsers could read two ways.
    pytest.param(
        _raw(_header, lambda li: _json_text(li, sub='"sub": "alice", "sub": "root"')),
        "duplicate_member",
        id="duplicate-claim",
    ),
    pytest.param(
        _raw(
            lambda li: b'{"alg":"RS256","alg":"none","kid":"%s"}' % li.kid.encode(),
            _claims,
        ),
        "duplicate_member",
        id="duplicate-header",
    ),
    pytest.param(
        _raw(_header, lambda li: _json_text(li, exp='"exp": NaN')),
        "non_finite_number",
        id="exp-nan",
    ),
    pytest.param(
        _raw(_header, lambda li: _json_text(li, exp='"exp": Infinity')),
        "non_finite_number",
        id="exp-infinity",
    ),
    pytest.param(
        _raw(_header, lambda li: _json_text(li, exp='"exp": 1e400')),
        "non_finite_number",
        id="exp-overflow",
    ),
    pytest.param(_raw(_header, b"[1, 2]"), "malformed_token", id="payload-array"),
    pytest.param(_raw(_header, b"not json"), "malformed_token", id="payload-text"),
    pytest.param(
        _raw(_header, b'{"sub": "\xff"}'), "malformed_token", id="payload-not-utf8"
    ),
    pytest.param(_raw(b'"RS256"', _claims), "malformed_token", id="header-string"),
    pytest.param(
        _raw({"kid": "x"}, _claims), "malformed_token", id="header-without-alg"
    ),
]


@pytest.mark.parametrize(("make_token", "reason"), REJECTIONS)
def test_bearer_bad_token_rejected(
    client: Client,
    local_issuer: LocalIssuer,
    recording_app: Any,
    caplog: pytest.LogCaptureFixture,
    make_token: Mint,
    reason: str,
) -> None:
    # Sent twice: a refusal is never remembered as anything but a refusal.
    headers = bearer(make_token(local_issuer))
    answers = [client.get("/api/orders", headers=headers) for _ in range(2)]
    assert [(a.status_code, a.headers["WWW-Authenticate"]) for a in answers] == [
        (401, INVALID_TOKEN)
    ] * 2
    assert audit_reasons(caplog).count(reason) == 2
    assert not recording_app.called


def test_bearer_token_within_leeway_accepted(
    client: Client, mint_token: Callable[..., str]
) -> None:
    token = mint_token(exp=NOW - 29, nbf=NOW + 30, iat=NOW + 30)
    assert client.get("/api/orders", headers=bearer(token)).status_code == 200


def test_bearer_header_keys_never_fetched(
    client: Client, local_issuer: LocalIssuer, recording_app: Any
) -> None:
    with LocalIssuer() as attacker:
        token = attacker.mint(
            iss=local_issuer.issuer,
            aud=local_issuer.audience,
            headers={"jku": attacker.jwks_uri, "x5u": attacker.jwks_uri},
        )
        response = client.get("/api/x", headers=bearer(token))
    assert response.status_code == 401
    assert attacker.jwks_fetches == 0


def test_bearer_unknown_issuer_fetches_no_keys(
    client: Client, local_issuer: LocalIssuer, mint_token: Callable[..., str]
) -> None:
    client.get("/api/x", headers=bearer(mint_token(iss="https://evil.example.test")))
    assert local_issuer.jwks_fetches == 0


def test_bearer_failure_bodies_identical(
    client: Client, local_issuer: LocalIssuer, mint_token: Callable[..., str]
) -> None:
    bodies = {
        client.get("/api/x", headers=bearer(token)).get_data()
        for token in (
            mint_token(exp=NOW - 100),
            mint_token(aud="https://other.test"),
            mint_token(headers={"kid": "nope"}),
            _tamper(local_issuer),
            "garbage",
        )
    }
    assert len(bodies) == 1


def test_bearer_audit_names_claimed_principal_issuer_kid(
    client: Client,
    local_issuer: LocalIssuer,
    mint_token: Callable[..., str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    client.get("/api/x", headers=bearer(mint_token(sub="alice", exp=NOW - 100)))
    record = next(r.audit for r in caplog.records if r.name == "securityhandler.audit")
    assert record["reason"] == "token_expired"
    assert (record["principal"], record["issuer"], record["kid"]) == (
        "alice",
        local_issuer.issuer,
        local_issuer.kid,
    )


def test_bearer_no_token_in_any_log_record(
    client: Client,
    local_issuer: LocalIssuer,
    mint_token: Callable[..., str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    good = mint_token(sub="alice")
    tokens = [
        good,
        mint_token(exp=NOW - 100),
        mint_token(headers={"kid": "nope"}),
        _tamper(local_issuer),
        mint_token(pad="x" * 9000),
    ]
    for token in tokens:
        client.get("/api/x", headers=bearer(token))
        client.get("/api/x", headers={"Authorization": f"Bearer {token} {token}"})
    logged = "\n".join(r.getMessage() + repr(r.__dict__) for r in caplog.records)
    signatures = [token.rsplit(".", 1)[-1][:40] for token in tokens]
    assert "credential_valid" in logged
    assert not [s for s in signatures if s in logged]


# --- Cloud Run: X-Serverless-Authorization -----------------------------------


def stripped(token: str) -> str:
    """Return the token as Cloud Run forwards it: signature removed."""
    return token.rsplit(".", 1)[0] + "."


def test_serverless_header_ignored_by_default(
    client: Client, mint_token: Callable[..., str], recording_app: Any
) -> None:
    headers = {"X-Serverless-Authorization": f"Bearer {stripped(mint_token())}"}
    response = client.get("/api/x", headers=headers)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == REALM
    assert not recording_app.called


def test_serverless_trust_warns_at_construction(service: TokenLoginService) -> None:
    with pytest.warns(SecurityWarning, match="invoker IAM check"):
        BearerAuthenticator(service, trust_serverless_authorization=True)


@pytest.fixture
def serverless_client(
    frozen: FrozenDateTimeFactory, service: TokenLoginService, recording_app: Any
) -> Client:
    with pytest.warns(SecurityWarning):
        authenticator = BearerAuthenticator(
            service, "orders", trust_serverless_authorization=True
        )
    return Client(make_handler(recording_app, authenticator))


@pytest.mark.parametrize(
    "shape",
    [
        pytest.param(stripped, id="trailing-dot"),
        pytest.param(lambda t: t.rsplit(".", 1)[0], id="two-segments"),
    ],
)
def test_serverless_trusted_stripped_token_accepted(
    serverless_client: Client,
    mint_token: Callable[..., str],
    recording_app: Any,
    shape: Callable[[str], str],
) -> None:
    token = shape(mint_token(sub="caller@p.iam.gserviceaccount.com"))
    headers = {"X-Serverless-Authorization": f"Bearer {token}"}
    response = serverless_client.get("/api/x", headers=headers)
    assert response.status_code == 200
    assert recording_app.last.remote_user == "caller@p.iam.gserviceaccount.com"


@pytest.mark.parametrize(
    ("claims", "reason"),
    [
        pytest.param({"exp": NOW - 100}, "token_expired", id="expired"),
        pytest.param({"aud": "https://other.test"}, "audience_mismatch", id="aud"),
        pytest.param({"iss": "https://evil.test"}, "issuer_unknown", id="iss"),
    ],
)
def test_serverless_trusted_claims_still_checked(
    serverless_client: Client,
    mint_token: Callable[..., str],
    recording_app: Any,
    caplog: pytest.LogCaptureFixture,
    claims: dict[str, Any],
    reason: str,
) -> None:
    headers = {"X-Serverless-Authorization": f"Bearer {stripped(mint_token(**claims))}"}
    response = serverless_client.get("/api/x", headers=headers)
    assert response.headers["WWW-Authenticate"] == INVALID_TOKEN
    assert reason in audit_reasons(caplog)
    assert not recording_app.called


def test_serverless_trust_never_skips_authorization_signature(
    serverless_client: Client,
    mint_token: Callable[..., str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    headers = {
        "Authorization": f"Bearer {stripped(mint_token())}",
        "X-Serverless-Authorization": f"Bearer {stripped(mint_token())}",
    }
    response = serverless_client.get("/api/x", headers=headers)
    assert response.status_code == 401
    assert "malformed_token" in audit_reasons(caplog)


# --- Identity-Aware Proxy ----------------------------------------------------


@pytest.fixture
def iap_issuer() -> Iterator[LocalIssuer]:
    with LocalIssuer(algorithm="ES256", audience=IAP_AUDIENCE) as issuer:
        yield issuer


@pytest.fixture
def iap_client(
    frozen: FrozenDateTimeFactory, iap_issuer: LocalIssuer, recording_app: Any
) -> Client:
    issuer = TokenIssuer(
        "iap", preset="iap", audiences=[IAP_AUDIENCE], jwks_uri=iap_issuer.jwks_uri
    )
    service = TokenLoginService("iap", [issuer])
    return Client(make_handler(recording_app, IapAuthenticator(service)))


def iap_token(issuer: LocalIssuer, **claims: Any) -> str:
    defaults = {
        "iss": "https://cloud.google.com/iap",
        "sub": "accounts.google.com:1234567890",
        "email": "alice@example.com",
    }
    return issuer.mint({**defaults, **claims})


def test_iap_assertion_accepted(
    iap_client: Client, iap_issuer: LocalIssuer, recording_app: Any
) -> None:
    headers = {"X-Goog-IAP-JWT-Assertion": iap_token(iap_issuer)}
    response = iap_client.get("/api/x", headers=headers)
    assert response.status_code == 200
    assert (recording_app.last.remote_user, recording_app.last.auth_type) == (
        "alice@example.com",
        "IAP",
    )


def test_iap_bad_assertion_rejected_without_challenge(
    iap_client: Client,
    iap_issuer: LocalIssuer,
    recording_app: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    headers = {
        "X-Goog-IAP-JWT-Assertion": iap_token(iap_issuer, aud="/projects/1/apps/x")
    }
    response = iap_client.get("/api/x", headers=headers)
    assert (response.status_code, "WWW-Authenticate" in response.headers) == (
        401,
        False,
    )
    assert "audience_mismatch" in audit_reasons(caplog)
    assert not recording_app.called


def test_iap_assertion_in_authorization_header_not_read(
    iap_client: Client, iap_issuer: LocalIssuer, recording_app: Any
) -> None:
    response = iap_client.get("/api/x", headers=bearer(iap_token(iap_issuer)))
    assert response.status_code == 401
    assert not recording_app.called
