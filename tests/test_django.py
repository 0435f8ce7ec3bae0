"""The Django integration, through the Django example and Django's test client.

Django's ``Client`` calls Django's handler directly, not a WSGI callable, so
:class:`SecuredClient` puts the security handler in front of it the way
``wsgi.py`` does: a request the handler refuses never reaches Django.
The example demands HTTPS wherever a credential is needed, so requests there
are sent with ``secure=True`` (``wsgi.url_scheme`` "https"), as behind TLS.
"""

from __future__ import annotations

import base64
import logging
import subprocess
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import django
import pytest
from django.conf import settings
from django.core.handlers.wsgi import WSGIRequest
from django.http import HttpRequest, HttpResponse
from django.test import Client
from werkzeug.test import EnvironBuilder

import securityhandler
from securityhandler.django import IdentityMiddleware

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "django_project"
SECURITY = EXAMPLE / "security.yaml"
ALICE = ("alice", "wonderland")
BOB = ("bob", "builder")
_RESPONSE_KEY = "tests.django_response"


class _SecuredHandler:
    """Run Django's test handler behind the security handler."""

    def __init__(self, django_handler: Any) -> None:
        self.django_handler = django_handler
        self.wsgi = securityhandler.secure(self._django, SECURITY)

    def _django(
        self, environ: WSGIEnvironment, start_response: StartResponse
    ) -> Iterable[bytes]:
        response = self.django_handler(environ)
        environ[_RESPONSE_KEY] = response
        start_response(f"{response.status_code} {response.reason_phrase}", [])
        return []

    def __call__(self, environ: dict[str, Any]) -> HttpResponse:
        answer: dict[str, Any] = {}

        def start_response(status: str, headers: list[tuple[str, str]]) -> None:
            answer.update(status=int(status[:3]), headers=headers)

        body = b"".join(self.wsgi(environ, start_response))
        if _RESPONSE_KEY in environ:
            response: HttpResponse = environ[_RESPONSE_KEY]
            return response
        # The security handler answered itself; Django never saw the request.
        refused = HttpResponse(body, status=answer["status"])
        for name, value in answer["headers"]:
            refused[name] = value
        refused.wsgi_request = WSGIRequest(environ)  # type: ignore[attr-defined]
        return refused


class SecuredClient(Client):
    """Django's test client with the example's security handler in front."""

    def __init__(self) -> None:
        super().__init__()
        self.handler = _SecuredHandler(self.handler)


@pytest.fixture(scope="module")
def client() -> Iterator[SecuredClient]:
    """Configure Django from the example's settings, in-memory, and migrate.

    The example's package is importable only while this module's tests run;
    the database is an in-memory SQLite one, gone with the process.
    """
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(EXAMPLE))
        from orders_site import settings as example

        values = {
            name: getattr(example, name) for name in dir(example) if name.isupper()
        }
        values["DATABASES"] = {
            "default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}
        }
        values["ALLOWED_HOSTS"] = ["testserver"]
        settings.configure(**values)
        django.setup()
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        yield SecuredClient()


def _basic(user: tuple[str, str]) -> dict[str, str]:
    token = base64.b64encode(":".join(user).encode()).decode()
    return {"Authorization": f"Basic {token}"}


def test_protected_route_sets_identity_and_user(client: SecuredClient) -> None:
    response = client.get("/api/orders", secure=True, headers=_basic(ALICE))

    assert response.status_code == 200
    assert response.json()["caller"] == {
        "user": "alice",
        "roles": ["admin", "writer"],
        "django_user": "alice",
    }


def test_remote_user_backend_creates_user(client: SecuredClient) -> None:
    from django.contrib.auth.models import User

    response = client.get("/admin/", secure=True, headers=_basic(ALICE))

    assert response.status_code == 200
    assert response.wsgi_request.user.is_authenticated
    assert User.objects.filter(username="alice").exists()


def test_public_route_without_credentials_anonymous(client: SecuredClient) -> None:
    response = client.get("/", secure=True)

    assert response.status_code == 200
    assert response.json()["caller"] == {"user": None, "roles": [], "django_user": None}


def test_public_route_with_credentials_identified(client: SecuredClient) -> None:
    # No login is needed here, so request.identity checks the credential
    # when the view reads it (deferred authentication).
    response = client.get("/healthz", secure=True, headers=_basic(BOB))

    assert response.status_code == 200
    assert response.json()["caller"]["user"] == "bob"


def test_missing_credentials_challenged(client: SecuredClient) -> None:
    response = client.get("/api/orders", secure=True)

    assert response.status_code == 401
    assert response["WWW-Authenticate"] == 'Basic realm="orders", charset="UTF-8"'


@pytest.mark.parametrize(
    ("method", "path", "user", "status"),
    [
        pytest.param("GET", "/api/orders", ("bob", "wrong"), 401, id="bad-password"),
        pytest.param("POST", "/api/orders", BOB, 403, id="write-without-writer"),
        pytest.param("POST", "/api/orders", ALICE, 201, id="write-as-writer"),
        pytest.param("GET", "/admin/", BOB, 403, id="admin-without-role"),
        pytest.param("TRACE", "/", None, 403, id="trace-root-forbidden"),
        pytest.param("TRACE", "/api/orders", ALICE, 403, id="trace-api-forbidden"),
        pytest.param("TRACE", "/admin/", ALICE, 403, id="trace-admin-forbidden"),
        pytest.param("POST", "/healthz", ALICE, 403, id="post-health-forbidden"),
        pytest.param("GET", "/other", BOB, 404, id="default-reaches-app"),
    ],
)
def test_example_statuses(
    client: SecuredClient,
    method: str,
    path: str,
    user: tuple[str, str] | None,
    status: int,
) -> None:
    response = client.generic(
        method,
        path,
        b'{"item": "tea"}',
        content_type="application/json",
        secure=True,
        headers=_basic(user) if user else None,
    )

    assert response.status_code == status


@pytest.mark.parametrize(
    ("method", "path", "user"),
    [
        pytest.param("GET", "/api/orders", None, id="read-no-credentials"),
        pytest.param("GET", "/api/orders", BOB, id="read-any-user"),
        pytest.param("POST", "/api/orders", ALICE, id="write-as-writer"),
        pytest.param("GET", "/admin/", ALICE, id="admin-as-admin"),
        pytest.param("GET", "/other", BOB, id="default-signed-in"),
    ],
)
def test_plain_http_credentialed_path_refused(
    client: SecuredClient,
    caplog: pytest.LogCaptureFixture,
    method: str,
    path: str,
    user: tuple[str, str] | None,
) -> None:
    # 403, not a 401 challenge: nothing invites a password over plain HTTP,
    # and one sent anyway is never checked; Django never sees the request.
    caplog.set_level(logging.INFO, logger="securityhandler.audit")
    response = client.generic(
        method,
        path,
        b'{"item": "tea"}',
        content_type="application/json",
        headers=_basic(user) if user else None,
    )

    assert response.status_code == 403
    assert not response.has_header("WWW-Authenticate")
    assert _audit_reasons(caplog.records) == ["insecure_transport"]


@pytest.mark.parametrize("path", ["/", "/healthz"])
def test_plain_http_public_path_answers(client: SecuredClient, path: str) -> None:
    response = client.get(path)

    assert response.status_code == 200
    assert response.json()["caller"]["user"] is None


def test_identity_checked_only_when_read(
    client: SecuredClient, caplog: pytest.LogCaptureFixture
) -> None:
    seen: list[HttpRequest] = []

    def view(request: HttpRequest) -> HttpResponse:
        seen.append(request)
        return HttpResponse()

    def django_app(
        environ: WSGIEnvironment, start_response: StartResponse
    ) -> Iterable[bytes]:
        IdentityMiddleware(view)(WSGIRequest(environ))
        start_response("200 OK", [])
        return []

    app = securityhandler.secure(django_app, SECURITY)
    environ = EnvironBuilder(
        "/", base_url="https://localhost", headers=_basic(ALICE)
    ).get_environ()
    caplog.set_level(logging.INFO, logger="securityhandler.audit")

    app(environ, lambda status, headers: lambda data: None)
    before = _audit_decisions(caplog.records)
    name = seen[0].identity.name  # type: ignore[attr-defined]

    assert before == []
    assert name == "alice"
    assert _audit_decisions(caplog.records) == ["authenticated"]


def _audit_decisions(records: list[logging.LogRecord]) -> list[str]:
    return [r.audit["decision"] for r in records if r.name == "securityhandler.audit"]


def _audit_reasons(records: list[logging.LogRecord]) -> list[str]:
    return [r.audit["reason"] for r in records if r.name == "securityhandler.audit"]


def test_package_import_leaves_django_unloaded(tmp_path: Path) -> None:
    code = "import sys, securityhandler; print('django' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    )

    assert result.stdout.strip() == "False"
