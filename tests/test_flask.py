"""The Flask integration, through the Flask example and its test client."""

from __future__ import annotations

import importlib.util
import logging
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

import securityhandler
from securityhandler.flask import current_identity, get_current_identity

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "flask_app"
ALICE = ("alice", "wonderland")
BOB = ("bob", "builder")
# The example demands HTTPS wherever a credential is needed: requests there
# go to an https base URL (wsgi.url_scheme "https"), as behind TLS.
HTTPS = "https://localhost"


@pytest.fixture(scope="module")
def app() -> Flask:
    """Return the Flask example's app, its wsgi_app wrapped by security.yaml."""
    spec = importlib.util.spec_from_file_location(
        "flask_example_app", EXAMPLE / "app.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    example: Flask = module.app
    return example


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    """Return a test client of the example app."""
    return app.test_client()


def test_protected_route_sees_identity(client: FlaskClient) -> None:
    response = client.get("/api/orders", base_url=HTTPS, auth=ALICE)

    assert response.status_code == 200
    assert response.json is not None
    assert response.json["caller"] == {
        "user": "alice",
        "roles": ["admin", "writer"],
        "auth_type": "BASIC",
    }


def test_public_route_without_credentials_anonymous(client: FlaskClient) -> None:
    response = client.get("/", base_url=HTTPS)

    assert response.status_code == 200
    assert response.json is not None
    assert response.json["caller"]["user"] is None


def test_public_route_with_credentials_identified(client: FlaskClient) -> None:
    # The path needs no login, so the credential is checked only when the
    # view reads current_identity (deferred authentication).
    response = client.get("/", base_url=HTTPS, auth=BOB)

    assert response.status_code == 200
    assert response.json is not None
    assert response.json["caller"]["user"] == "bob"


def test_public_route_bad_password_anonymous(client: FlaskClient) -> None:
    response = client.get("/healthz", base_url=HTTPS, auth=("alice", "wrong"))

    assert response.status_code == 200
    assert response.json is not None
    assert response.json["caller"]["user"] is None


def test_missing_credentials_challenged(client: FlaskClient) -> None:
    response = client.get("/api/orders", base_url=HTTPS)

    assert response.status_code == 401
    assert (
        response.headers["WWW-Authenticate"] == 'Basic realm="orders", charset="UTF-8"'
    )


@pytest.mark.parametrize(
    ("method", "path", "auth", "status"),
    [
        pytest.param("GET", "/api/orders", ("alice", "wrong"), 401, id="bad-password"),
        pytest.param("GET", "/api/orders", BOB, 200, id="read-any-user"),
        pytest.param("POST", "/api/orders", BOB, 403, id="write-without-writer"),
        pytest.param("POST", "/api/orders", ALICE, 201, id="write-as-writer"),
        pytest.param("GET", "/admin/", BOB, 403, id="admin-without-role"),
        pytest.param("GET", "/admin/", ALICE, 200, id="admin-as-admin"),
        pytest.param("TRACE", "/", None, 403, id="trace-root-forbidden"),
        pytest.param("TRACE", "/other", ALICE, 403, id="trace-default-forbidden"),
        pytest.param("TRACE", "/api/orders", ALICE, 403, id="trace-api-forbidden"),
        pytest.param("TRACE", "/admin/", ALICE, 403, id="trace-admin-forbidden"),
        pytest.param("POST", "/", ALICE, 403, id="post-root-forbidden"),
        pytest.param("DELETE", "/healthz", ALICE, 403, id="delete-health-forbidden"),
        pytest.param("GET", "/other", None, 401, id="default-needs-login"),
        pytest.param("GET", "/other", BOB, 404, id="default-reaches-app"),
    ],
)
def test_example_statuses(
    client: FlaskClient,
    method: str,
    path: str,
    auth: tuple[str, str] | None,
    status: int,
) -> None:
    response = client.open(
        path, method=method, base_url=HTTPS, auth=auth, json={"item": "tea"}
    )

    assert response.status_code == status


@pytest.mark.parametrize(
    ("method", "path", "auth"),
    [
        pytest.param("GET", "/api/orders", None, id="read-no-credentials"),
        pytest.param("GET", "/api/orders", BOB, id="read-any-user"),
        pytest.param("POST", "/api/orders", ALICE, id="write-as-writer"),
        pytest.param("GET", "/admin/", ALICE, id="admin-as-admin"),
        pytest.param("GET", "/other", BOB, id="default-signed-in"),
    ],
)
def test_plain_http_credentialed_path_refused(
    client: FlaskClient,
    caplog: pytest.LogCaptureFixture,
    method: str,
    path: str,
    auth: tuple[str, str] | None,
) -> None:
    # 403, not a 401 challenge: nothing invites a password over plain HTTP,
    # and one sent anyway is never checked.
    caplog.set_level(logging.INFO, logger="securityhandler.audit")
    response = client.open(path, method=method, auth=auth, json={"item": "tea"})

    assert response.status_code == 403
    assert "WWW-Authenticate" not in response.headers
    assert _audit_reasons(caplog.records) == ["insecure_transport"]


@pytest.mark.parametrize("path", ["/", "/healthz"])
def test_plain_http_public_path_answers(client: FlaskClient, path: str) -> None:
    response = client.get(path)

    assert response.status_code == 200
    assert response.json is not None
    assert response.json["caller"]["user"] is None


def _audit_reasons(records: list[logging.LogRecord]) -> list[str]:
    return [r.audit["reason"] for r in records if r.name == "securityhandler.audit"]


@pytest.fixture(scope="module")
def probe() -> FlaskClient:
    """Return a client of an app whose one open view reports the plain identity."""
    probe = Flask("probe")

    @probe.get("/open")
    def open_view() -> dict[str, Any]:
        identity = get_current_identity()
        return {"is_none": identity is None, "name": identity and identity.name}

    probe.wsgi_app = securityhandler.secure(  # type: ignore[method-assign]
        probe.wsgi_app,
        {
            "login_services": {
                "staff": {"type": "hash", "file": str(EXAMPLE / "realm.properties")}
            },
            "authenticators": [{"type": "basic", "login_service": "staff"}],
            "constraints": [{"paths": ["/open"], "authorization": "allowed"}],
        },
    )
    return probe.test_client()


@pytest.mark.parametrize(
    ("auth", "expected"),
    [
        pytest.param(None, {"is_none": True, "name": None}, id="no-credentials"),
        pytest.param(ALICE, {"is_none": False, "name": "alice"}, id="credentials"),
    ],
)
def test_get_current_identity_plain_value(
    probe: FlaskClient, auth: tuple[str, str] | None, expected: dict[str, Any]
) -> None:
    response = probe.get("/open", auth=auth)

    assert response.status_code == 200
    assert response.json == expected


def test_current_identity_falsy_outside_request() -> None:
    assert not current_identity
    with pytest.raises(RuntimeError, match="request context"):
        get_current_identity()


def test_package_import_leaves_flask_unloaded(tmp_path: Path) -> None:
    code = "import sys, securityhandler; print('flask' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    )

    assert result.stdout.strip() == "False"
