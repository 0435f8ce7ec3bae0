"""Bearer tokens from a real OpenID provider, its keys rotated while the service runs.

The provider is ``../shared/idp`` (node-oidc-provider on loopback), started
once for the session. Tokens come from its ``client_credentials`` grant; its
keys are rotated and retired through its ``keys`` script, with the service
under test left running: no restart, no new handler. The service's clock is
injected, so key-cache expiry is reached by moving that clock, never by
sleeping. Fetches are counted by wrapping the real HTTP fetch, which still
goes to the provider.
"""

from __future__ import annotations

import base64
import json
import logging
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
import requests
from freezegun import freeze_time
from werkzeug.test import Client

from securityhandler import secure
from securityhandler.bearer import BearerAuthenticator
from securityhandler.constraints import Constraint, ConstraintMapping
from securityhandler.handler import ConstraintSecurityHandler
from securityhandler.jwks import fetch_document
from securityhandler.tokens import TokenIssuer, TokenLoginService

ROOT = Path(__file__).resolve().parent.parent
IDP_DIR = ROOT.parent / "shared" / "idp"
API = "https://api.example.test"
REALM = "api"
ALL_SCOPES = "api:read api:write api:admin"
# DESIGN §5: a JWKS served without Cache-Control (as this provider serves it)
# is kept 10 minutes; an unknown kid refetches at most once per 30 s.
JWKS_TTL = 600
REFETCH_COOLDOWN = 30
# Bounds for a failure, not pauses: the first start runs `npm ci`.
START_TIMEOUT = 300
KEYS_TIMEOUT = 60


@pytest.fixture(scope="session")
def idp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Start the test OpenID provider; yield its connection JSON; stop it."""
    state = tmp_path_factory.mktemp("idp")
    started = subprocess.run(
        [str(IDP_DIR / "start"), "--state-dir", str(state)],
        check=True,
        capture_output=True,
        text=True,
        timeout=START_TIMEOUT,
    )
    try:
        yield json.loads(started.stdout)
    finally:
        subprocess.run(
            [str(IDP_DIR / "stop"), str(state)],
            check=True,
            capture_output=True,
            timeout=KEYS_TIMEOUT,
        )


def get_token(idp: Mapping[str, Any], client_id: str, scope: str) -> str:
    """Return an access token from the ``client_credentials`` grant."""
    client = idp["clients"][client_id]
    response = requests.post(
        idp["token_endpoint"],
        auth=(client["client_id"], client["client_secret"]),
        data={"grant_type": "client_credentials", "scope": scope},
        timeout=30,
    )
    response.raise_for_status()
    token: str = response.json()["access_token"]
    return token


def manage_keys(idp: Mapping[str, Any], *command: str) -> dict[str, Any]:
    """Run ``shared/idp/keys STATE_DIR <command>``; return its JSON answer."""
    done = subprocess.run(
        [str(IDP_DIR / "keys"), idp["state_dir"], *command],
        check=True,
        capture_output=True,
        text=True,
        timeout=KEYS_TIMEOUT,
    )
    answer: dict[str, Any] = json.loads(done.stdout)
    return answer


def segment_json(segment: str) -> dict[str, Any]:
    """Decode one base64url JSON segment of a token."""
    value: dict[str, Any] = json.loads(
        base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    )
    return value


def kid_of(token: str) -> str:
    kid: str = segment_json(token.split(".", 1)[0])["kid"]
    return kid


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass
class Clock:
    """The service's clock: real time at the start, moved by the test."""

    now: float = field(default_factory=time.time)

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class Service:
    """A protected app, its clock and the URLs its key cache fetched."""

    client: Client
    clock: Clock
    fetched: list[str]
    app: Any

    def get(self, path: str, token: str) -> Any:
        return self.client.get(path, headers={"Authorization": f"Bearer {token}"})

    def jwks_fetches(self, idp: Mapping[str, Any]) -> int:
        return self.fetched.count(idp["jwks_uri"])


def counting_fetcher(
    fetched: list[str],
) -> Callable[[str, float], tuple[bytes, Mapping[str, str]]]:
    """Return the real HTTP fetch, noting each URL it is asked for."""

    def fetch(url: str, timeout: float) -> tuple[bytes, Mapping[str, str]]:
        fetched.append(url)
        return fetch_document(url, timeout)

    return fetch


@pytest.fixture
def service(idp: Mapping[str, Any], recording_app: Any) -> Service:
    """Protect the recording app with bearer tokens of the provider.

    The issuer is configured by its URL only: the JWKS comes through OpenID
    discovery.
    """
    issuer = TokenIssuer(
        "idp", issuer=idp["issuer"], audiences=[API], role_claims=["roles", "scope"]
    )
    fetched: list[str] = []
    issuer.jwks.fetcher = counting_fetcher(fetched)
    clock = Clock()
    login_service = TokenLoginService("idp", [issuer], clock=clock)
    handler = ConstraintSecurityHandler(
        recording_app,
        [
            ConstraintMapping(("/admin/*",), Constraint.with_roles("admin")),
            ConstraintMapping(("/reports/*",), Constraint.with_roles("api:read")),
        ],
        [BearerAuthenticator(login_service, REALM)],
        realm=REALM,
    )
    return Service(Client(handler), clock, fetched, recording_app)


def audit_reasons(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.audit["reason"] for r in caplog.records if r.name == "securityhandler.audit"
    ]


# --- tokens of the provider's clients ----------------------------------------------


@pytest.mark.parametrize(
    ("client_id", "path", "status"),
    [
        pytest.param("m2m-client", "/admin/users", 200, id="admin-role-claim"),
        pytest.param("m2m-client", "/reports/daily", 200, id="all-scopes"),
        pytest.param("m2m-readonly", "/reports/daily", 200, id="read-scope"),
    ],
)
def test_idp_token_reaches_constraint(
    idp: Mapping[str, Any], service: Service, client_id: str, path: str, status: int
) -> None:
    token = get_token(idp, client_id, ALL_SCOPES)

    response = service.get(path, token)

    assert response.status_code == status
    assert service.app.last.remote_user == client_id
    assert service.app.last.auth_type == "BEARER"


def test_idp_keys_found_through_discovery(
    idp: Mapping[str, Any], service: Service
) -> None:
    service.get("/admin/users", get_token(idp, "m2m-client", ALL_SCOPES))

    assert service.fetched == [idp["discovery_url"], idp["jwks_uri"]]


def test_idp_readonly_token_gets_insufficient_scope(
    idp: Mapping[str, Any], service: Service
) -> None:
    token = get_token(idp, "m2m-readonly", ALL_SCOPES)

    response = service.get("/admin/users", token)

    assert response.status_code == 403
    assert response.headers.get_all("WWW-Authenticate") == [
        f'Bearer realm="{REALM}", error="insufficient_scope"'
    ]
    assert not service.app.called


def test_idp_tampered_token_refused(
    idp: Mapping[str, Any], service: Service, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="securityhandler.audit")
    header, payload, signature = get_token(idp, "m2m-readonly", "api:read").split(".")
    claims = segment_json(payload)
    claims["roles"] = ["admin"]
    forged = ".".join([header, b64(json.dumps(claims).encode()), signature])

    response = service.get("/admin/users", forged)

    assert response.status_code == 401
    assert audit_reasons(caplog) == ["bad_signature"]
    assert not service.app.called


# --- key rotation while the service runs ------------------------------------------
#
# Each test warms the service with a token of the current key, then lets the
# refetch cooldown pass (the service has been up a while when the provider
# rotates): within the cooldown of the last fetch, a new kid is refused
# rather than fetched, which is what stops a flood of made-up kids.


def test_idp_rotated_key_accepted_without_restart(
    idp: Mapping[str, Any], service: Service
) -> None:
    old = get_token(idp, "m2m-client", ALL_SCOPES)
    service.get("/admin/users", old)
    service.clock.advance(REFETCH_COOLDOWN + 1)
    manage_keys(idp, "rotate")
    new = get_token(idp, "m2m-client", ALL_SCOPES)

    response = service.get("/admin/users", new)

    assert kid_of(new) != kid_of(old)
    assert response.status_code == 200
    # The unknown kid refetched the JWKS once, well before it expired.
    assert service.jwks_fetches(idp) == 2


def test_idp_old_key_accepted_while_published(
    idp: Mapping[str, Any], service: Service
) -> None:
    old = get_token(idp, "m2m-client", ALL_SCOPES)
    service.get("/admin/users", old)
    service.clock.advance(REFETCH_COOLDOWN + 1)
    manage_keys(idp, "rotate")
    service.get("/admin/users", get_token(idp, "m2m-client", ALL_SCOPES))

    right_after = service.get("/admin/users", old)
    service.clock.advance(JWKS_TTL + REFETCH_COOLDOWN + 1)
    after_expiry = service.get("/admin/users", old)

    assert right_after.status_code == 200
    assert after_expiry.status_code == 200
    assert service.jwks_fetches(idp) == 3


def test_idp_retired_key_refused_after_cache_expires(
    idp: Mapping[str, Any], service: Service, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="securityhandler.audit")
    old = get_token(idp, "m2m-client", ALL_SCOPES)
    service.get("/admin/users", old)
    service.clock.advance(REFETCH_COOLDOWN + 1)
    manage_keys(idp, "rotate")
    new = get_token(idp, "m2m-client", ALL_SCOPES)
    service.get("/admin/users", new)
    manage_keys(idp, "retire", kid_of(old))

    cached = service.get("/admin/users", old)
    service.clock.advance(JWKS_TTL + REFETCH_COOLDOWN + 1)
    expired = service.get("/admin/users", old)
    refused_for = audit_reasons(caplog)[-1]

    # Until the cached key set expires, the retired key still verifies.
    assert cached.status_code == 200
    assert (expired.status_code, refused_for) == (401, "unknown_kid")
    assert service.get("/admin/users", new).status_code == 200


# --- the same through security.yaml ----------------------------------------------

SECURITY_YAML = """\
realm: api
issuers:
  idp:
    issuer: {issuer}
    audiences: [{audience}]
    role_claims: [roles, scope]
authenticators:
  - {{type: bearer, issuers: [idp]}}
constraints:
  - {{name: admin, paths: ["/admin/*"], roles: [admin]}}
  - {{name: reports, paths: ["/reports/*"], roles: ["api:read"]}}
"""


@pytest.fixture
def yaml_client(idp: Mapping[str, Any], recording_app: Any, tmp_path: Path) -> Client:
    """Protect the recording app with ``secure()`` and an ``issuers:`` section."""
    config = tmp_path / "security.yaml"
    config.write_text(SECURITY_YAML.format(issuer=idp["issuer"], audience=API))
    return Client(secure(recording_app, config))


@pytest.mark.parametrize(
    ("client_id", "path", "status"),
    [
        pytest.param("m2m-client", "/admin/users", 200, id="admin"),
        pytest.param("m2m-readonly", "/reports/daily", 200, id="read-scope"),
        pytest.param("m2m-readonly", "/admin/users", 403, id="insufficient-scope"),
    ],
)
def test_idp_yaml_config_token_answers(
    idp: Mapping[str, Any],
    yaml_client: Client,
    client_id: str,
    path: str,
    status: int,
) -> None:
    token = get_token(idp, client_id, ALL_SCOPES)

    response = yaml_client.get(path, headers={"Authorization": f"Bearer {token}"})

    assert response.status_code == status


def test_idp_yaml_config_follows_rotation(
    idp: Mapping[str, Any], yaml_client: Client
) -> None:
    # The default clock is time.time, read at each call: freezegun moves it.
    with freeze_time(datetime.now(timezone.utc)) as frozen:
        old = get_token(idp, "m2m-client", ALL_SCOPES)
        yaml_client.get("/admin/users", headers={"Authorization": f"Bearer {old}"})
        frozen.tick(REFETCH_COOLDOWN + 1)
        manage_keys(idp, "rotate")
        new = get_token(idp, "m2m-client", ALL_SCOPES)
        manage_keys(idp, "retire", kid_of(old))
        frozen.tick(JWKS_TTL + REFETCH_COOLDOWN + 1)

        answers = [
            yaml_client.get("/admin/users", headers={"Authorization": f"Bearer {t}"})
            for t in (new, old)
        ]

    assert [answer.status_code for answer in answers] == [200, 401]
