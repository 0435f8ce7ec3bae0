"""Basic authentication through a real ConstraintSecurityHandler."""

from __future__ import annotations

import base64
import logging
from typing import Any

import pytest
from werkzeug.test import Client, TestResponse

from securityhandler.authentication import BasicAuthenticator
from securityhandler.constraints import Constraint, ConstraintMapping
from securityhandler.handler import ConstraintSecurityHandler
from securityhandler.realm import HashLoginService
from tests._jetty import obfuscate

# Jetty's Password tool output for "password": OBF: and MD5: forms.
PASSWORD = "password"
COLON_PASSWORD = "pa:ss:wörd"
CHALLENGE = 'Basic realm="orders", charset="UTF-8"'


class App:
    """The protected application; notes whether a request reached it."""

    def __init__(self) -> None:
        self.called = False
        self.remote_user: str | None = None

    def __call__(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        self.called = True
        self.remote_user = environ.get("REMOTE_USER")
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"app\n"]


@pytest.fixture
def app() -> App:
    """Return a fresh protected application."""
    return App()


@pytest.fixture
def client(app: App) -> Client:
    """Return a client of the app behind Basic authentication.

    ``/admin/*`` needs the ``admin`` role, ``/api/*`` any user.
    """
    users = HashLoginService(
        "staff",
        users={
            "alice": {
                "password": "MD5:5f4dcc3b5aa765d61d8327deb882cf99",
                "roles": ["admin"],
            },
            "bob": {"password": "OBF:1v2j1uum1xtv1zej1zer1xtn1uvk1v1v"},
            "carol": {"password": obfuscate(COLON_PASSWORD), "roles": ["admin"]},
        },
    )
    handler = ConstraintSecurityHandler(
        app,
        [
            ConstraintMapping(("/admin/*",), Constraint.with_roles("admin")),
            ConstraintMapping(("/api/*",), Constraint.any_user()),
        ],
        [BasicAuthenticator(users, realm="orders")],
    )
    return Client(handler)


def basic(user_pass: str | bytes, scheme: str = "Basic") -> str:
    raw = user_pass.encode() if isinstance(user_pass, str) else user_pass
    return f"{scheme} {base64.b64encode(raw).decode()}"


def get(client: Client, path: str, authorization: str | None) -> TestResponse:
    headers = {} if authorization is None else {"Authorization": authorization}
    return client.get(path, headers=headers)


def audit_records(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    return [r.audit for r in caplog.records if r.name == "securityhandler.audit"]


@pytest.fixture(autouse=True)
def _audit_at_info(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="securityhandler.audit")


@pytest.mark.parametrize(
    ("authorization", "reason"),
    [
        pytest.param(None, "no_credential", id="no-header"),
        pytest.param(basic("alice"), "malformed_credentials", id="no-colon"),
        pytest.param(basic(":password"), "malformed_credentials", id="empty-user"),
        pytest.param("Basic !!!!", "malformed_credentials", id="invalid-base64"),
        pytest.param(
            basic("alice:password").rstrip("="),
            "malformed_credentials",
            id="missing-padding",
        ),
        pytest.param(
            basic(b"alice:pass\xff\xfe"), "malformed_credentials", id="not-utf8"
        ),
        pytest.param(
            "Basic  " + basic("alice:password").split()[1],
            "malformed_credentials",
            id="two-spaces",
        ),
        pytest.param("Basic", "malformed_credentials", id="no-credentials"),
        pytest.param("Basic ", "malformed_credentials", id="empty-credentials"),
        pytest.param(basic("alice:" + "x" * 20000), "malformed_credentials", id="huge"),
        pytest.param(basic("mallory:password"), "bad_credentials", id="unknown-user"),
        pytest.param(basic("alice:wrong"), "bad_credentials", id="wrong-password"),
        pytest.param(basic("alice:Password"), "bad_credentials", id="case-differs"),
    ],
)
def test_basic_rejected_with_challenge(
    client: Client,
    app: App,
    caplog: pytest.LogCaptureFixture,
    authorization: str | None,
    reason: str,
) -> None:
    response = get(client, "/api/orders", authorization)
    assert (response.status_code, app.called) == (401, False)
    assert response.headers.getlist("WWW-Authenticate") == [CHALLENGE]
    assert reason in {record["reason"] for record in audit_records(caplog)}


@pytest.mark.parametrize(
    ("authorization", "user"),
    [
        pytest.param(basic("alice:password"), "alice", id="basic"),
        pytest.param(basic("alice:password", "basic"), "alice", id="lower-case"),
        pytest.param(basic("alice:password", "BASIC"), "alice", id="upper-case"),
        pytest.param(basic("carol:" + COLON_PASSWORD), "carol", id="colon-password"),
    ],
)
def test_basic_accepted(
    client: Client, app: App, authorization: str, user: str
) -> None:
    response = get(client, "/admin/panel", authorization)
    assert response.status_code == 200
    assert app.remote_user == user


def test_basic_colon_in_password_accepted(client: Client, app: App) -> None:
    response = get(client, "/api/x", basic("carol:" + COLON_PASSWORD))
    refused = get(client, "/api/x", basic("carol:pa"))
    assert (response.status_code, refused.status_code) == (200, 401)
    assert app.remote_user == "carol"


def test_basic_role_missing_forbidden(
    client: Client, app: App, caplog: pytest.LogCaptureFixture
) -> None:
    response = get(client, "/admin/panel", basic("bob:password"))
    assert (response.status_code, app.called) == (403, False)
    assert "WWW-Authenticate" not in response.headers
    denial = audit_records(caplog)[-1]
    assert (denial["reason"], denial["principal"]) == ("missing_role", "bob")


def test_basic_failure_audited_with_principal(
    client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    get(client, "/api/orders", basic("alice:wrong-pw-123"))
    failures = [r for r in audit_records(caplog) if r.get("principal") == "alice"]
    assert [r["reason"] for r in failures] == ["bad_credentials"]
    assert failures[0]["auth_type"] == "BASIC"


def test_basic_success_audited(
    client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    get(client, "/api/orders", basic("alice:password"))
    records = audit_records(caplog)
    assert [(r["decision"], r["principal"]) for r in records] == [
        ("authenticated", "alice")
    ]


@pytest.mark.parametrize(
    ("authorization", "secret"),
    [
        pytest.param(basic("alice:password"), "password", id="success"),
        pytest.param(basic("alice:wrong-pw-123"), "wrong-pw-123", id="wrong"),
        pytest.param(basic("mallory:guess-pw-9"), "guess-pw-9", id="unknown-user"),
        pytest.param(basic("bob:password"), "password", id="forbidden"),
        pytest.param(basic(b"eve:pw-\xff-77"), "pw-", id="not-utf8"),
    ],
)
def test_basic_audit_never_holds_password(
    client: Client, caplog: pytest.LogCaptureFixture, authorization: str, secret: str
) -> None:
    get(client, "/admin/panel", authorization)
    token = authorization.split()[1]
    assert caplog.records
    for record in caplog.records:
        text = record.getMessage() + repr(getattr(record, "audit", ""))
        assert secret not in text
        assert token not in text
