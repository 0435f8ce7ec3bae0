"""The request pipeline of ConstraintSecurityHandler (DESIGN sections 1-3)."""

from __future__ import annotations

import base64
import logging
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import pytest
from werkzeug.test import Client
from werkzeug.wrappers import Response

from securityhandler.authentication import (
    UNAUTHENTICATED,
    AuthenticationState,
    Authenticator,
    BasicAuthenticator,
)
from securityhandler.constraints import Constraint, ConstraintMapping, Transport
from securityhandler.errors import KeysUnavailableError
from securityhandler.handler import ConstraintSecurityHandler, Decision, ProxyConfig
from securityhandler.identity import UserIdentity

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIEnvironment

USERS = {"alice": ("a-pw", ["admin"]), "bob": ("b-pw", ["staff"])}
ALICE = ("alice", "a-pw")
BOB = ("bob", "b-pw")


class SpyAuthenticator(BasicAuthenticator):
    """Basic authentication that counts how often it is asked."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.calls = 0

    def validate_request(self, environ: WSGIEnvironment) -> AuthenticationState:
        self.calls += 1
        return super().validate_request(environ)


class RaisingAuthenticator(Authenticator):
    """An authenticator whose engine is broken: it raises ``error``."""

    def __init__(self, error: Exception) -> None:
        super().__init__()
        self.error = error

    def validate_request(self, environ: WSGIEnvironment) -> AuthenticationState:
        raise self.error


class SilentAuthenticator(Authenticator):
    """An authenticator that never finds a credential nor challenges."""

    def validate_request(self, environ: WSGIEnvironment) -> AuthenticationState:
        return UNAUTHENTICATED


MAPPINGS = [
    ConstraintMapping(("/healthz",), Constraint.allowed(name="health")),
    ConstraintMapping(("/admin/*",), Constraint.with_roles("admin", name="admin")),
    ConstraintMapping(("/me",), Constraint.any_user(name="me")),
    ConstraintMapping(("/closed",), Constraint.forbidden(name="closed")),
    ConstraintMapping(
        ("/secure/*",), Constraint.allowed(transport=Transport.SECURE, name="tls")
    ),
    ConstraintMapping(
        ("/vault/*",),
        Constraint.with_roles("admin", transport=Transport.SECURE, name="vault"),
    ),
    ConstraintMapping(("/x",), Constraint.allowed(name="x-read"), frozenset({"GET"})),
    ConstraintMapping(
        ("/x",), Constraint.forbidden(name="x-write"), frozenset({"POST"})
    ),
    ConstraintMapping(("/",), Constraint.allowed(name="open")),
]


@pytest.fixture
def spy(make_login_service: Callable[..., Any]) -> SpyAuthenticator:
    """Return a Basic authenticator over USERS that counts its calls."""
    return SpyAuthenticator(make_login_service(USERS), realm="test")


@pytest.fixture
def build(
    recording_app: Any, spy: SpyAuthenticator
) -> Callable[..., ConstraintSecurityHandler]:
    """Return a factory of handlers over MAPPINGS with the spy authenticator."""

    def make(
        authenticators: Sequence[Authenticator] | None = None,
        mappings: Sequence[ConstraintMapping] = MAPPINGS,
        **options: Any,
    ) -> ConstraintSecurityHandler:
        chain = [spy] if authenticators is None else authenticators
        return ConstraintSecurityHandler(recording_app, mappings, chain, **options)

    return make


@pytest.fixture
def client(
    build: Callable[..., ConstraintSecurityHandler],
    make_client: Callable[[Any], Client],
) -> Client:
    """Return a client of the default handler."""
    return make_client(build())


def _audit(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    """Return the structured fields of every audit record, oldest first."""
    records = caplog.records
    return [r.__dict__["audit"] for r in records if r.name == "securityhandler.audit"]


# Forbidden and allowed: no credential is read.


@pytest.mark.parametrize(
    "auth",
    [pytest.param(None, id="anonymous"), pytest.param(ALICE, id="admin")],
)
def test_forbidden_without_authentication(
    client: Client, spy: SpyAuthenticator, recording_app: Any, auth: Any
) -> None:
    response = client.get("/closed", auth=auth)
    assert response.status_code == 403
    assert "WWW-Authenticate" not in response.headers
    assert (spy.calls, recording_app.called) == (0, False)


def test_allowed_path_skips_authentication(
    client: Client, spy: SpyAuthenticator, recording_app: Any
) -> None:
    assert client.get("/healthz", auth=ALICE).status_code == 200
    assert spy.calls == 0
    assert (recording_app.last.remote_user, recording_app.last.auth_type) == (
        None,
        None,
    )


@pytest.mark.parametrize(
    ("auth", "expected"),
    [
        pytest.param(ALICE, "alice", id="valid"),
        pytest.param(None, None, id="no-credential"),
        pytest.param(("alice", "wrong"), None, id="wrong-password"),
    ],
)
def test_allowed_path_deferred_identity(
    client: Client,
    spy: SpyAuthenticator,
    recording_app: Any,
    auth: Any,
    expected: str | None,
) -> None:
    recording_app.ask_identity = True
    assert client.get("/healthz", auth=auth).status_code == 200
    identity = recording_app.last.identity
    assert (identity.name if identity else None, spy.calls) == (expected, 1)


def test_unconstrained_path_deferred_identity(
    build: Callable[..., ConstraintSecurityHandler],
    make_client: Callable[[Any], Client],
    recording_app: Any,
) -> None:
    recording_app.ask_identity = True
    mappings = [ConstraintMapping(("/admin/*",), Constraint.with_roles("admin"))]
    client = make_client(build(mappings=mappings))
    assert client.get("/free", auth=BOB).status_code == 200
    assert recording_app.last.identity.roles == {"staff"}


# Authentication and authorization.


@pytest.mark.parametrize(
    ("path", "auth", "expected"),
    [
        pytest.param("/admin/x", ALICE, 200, id="role-held"),
        pytest.param("/admin/x", BOB, 403, id="role-missing"),
        pytest.param("/admin/x", None, 401, id="no-credential"),
        pytest.param("/admin/x", ("alice", "wrong"), 401, id="wrong-password"),
        pytest.param("/me", BOB, 200, id="any-user"),
        pytest.param("/me", None, 401, id="any-user-anonymous"),
    ],
)
def test_role_constraints(client: Client, path: str, auth: Any, expected: int) -> None:
    assert client.get(path, auth=auth).status_code == expected


def test_identity_in_environ_after_auth(client: Client, recording_app: Any) -> None:
    assert client.get("/admin/x", auth=ALICE).status_code == 200
    seen = recording_app.last
    assert (seen.remote_user, seen.auth_type) == ("alice", "BASIC")


@pytest.mark.parametrize(
    ("path", "auth", "expected"),
    [
        pytest.param(
            "/admin/x",
            ALICE,
            Decision("allow", "authorized", "/admin/*", ("admin",), "GET"),
            id="authorized",
        ),
        pytest.param(
            "/healthz",
            None,
            Decision("allow", "allowed", "/healthz", ("health",), "GET"),
            id="allowed",
        ),
    ],
)
def test_decision_names_constraint(
    client: Client, recording_app: Any, path: str, auth: Any, expected: Decision
) -> None:
    assert client.get(path, auth=auth).status_code == 200
    assert recording_app.last.decision == expected


@pytest.mark.parametrize(
    "path",
    [pytest.param("/admin/x", id="roles"), pytest.param("/me", id="any-user")],
)
def test_empty_chain_forbids_without_challenge(
    build: Callable[..., ConstraintSecurityHandler],
    make_client: Callable[[Any], Client],
    path: str,
) -> None:
    response = make_client(build(authenticators=[])).get(path, auth=ALICE)
    assert response.status_code == 403
    assert "WWW-Authenticate" not in response.headers


def test_unauthorized_one_challenge_per_authenticator(
    build: Callable[..., ConstraintSecurityHandler],
    make_client: Callable[[Any], Client],
    make_login_service: Callable[..., Any],
) -> None:
    service = make_login_service(USERS)
    chain = [
        BasicAuthenticator(service, realm="one"),
        SilentAuthenticator(),
        BasicAuthenticator(service, realm="two"),
    ]
    response = make_client(build(authenticators=chain)).get("/admin/x")
    assert response.status_code == 401
    assert response.headers.getlist("WWW-Authenticate") == [
        'Basic realm="one", charset="UTF-8"',
        'Basic realm="two", charset="UTF-8"',
    ]


def test_bodies_do_not_say_which_check_failed(
    build: Callable[..., ConstraintSecurityHandler],
    make_client: Callable[[Any], Client],
) -> None:
    client = make_client(build())
    forbidden = client.get("/closed", auth=BOB)
    missing_role = client.get("/admin/x", auth=BOB)
    uncovered = client.put("/x", auth=BOB)
    insecure = client.post("/secure/a")
    responses = (forbidden, missing_role, uncovered, insecure)
    assert {r.status_code for r in responses} == {403}
    assert len({r.get_data() for r in responses}) == 1


# Methods.


def test_method_override_header_ignored(client: Client, recording_app: Any) -> None:
    response = client.post("/x", headers={"X-HTTP-Method-Override": "GET"})
    assert response.status_code == 403
    assert not recording_app.called


@pytest.mark.parametrize(
    ("method", "expected"),
    [
        pytest.param("GET", 200, id="upper-allowed"),
        pytest.param("get", 403, id="lower-uncovered"),
        pytest.param("Post", 403, id="mixed-uncovered"),
    ],
)
def test_method_names_case_sensitive(
    client: Client, method: str, expected: int
) -> None:
    assert client.open("/x", method=method).status_code == expected


def test_method_lowercase_not_forbidden_one(
    build: Callable[..., ConstraintSecurityHandler],
    make_client: Callable[[Any], Client],
) -> None:
    client = make_client(build(deny_uncovered_methods=False))
    assert client.open("/x", method="post").status_code == 200
    assert client.open("/x", method="POST").status_code == 403


# Secure transport.


_TLS = "https://example.com:8443/secure/a"


@pytest.mark.parametrize(
    ("method", "url", "host", "port", "expected", "location"),
    [
        pytest.param(
            "GET", "/secure/a?x=1", "example.com", 8443, 302, _TLS + "?x=1", id="get"
        ),
        pytest.param(
            "HEAD", "/secure/a?x=1", "example.com", 8443, 302, _TLS + "?x=1", id="head"
        ),
        pytest.param("GET", "/secure/a", "example.com", 8443, 302, _TLS, id="no-query"),
        pytest.param(
            "GET", "/secure/a", "example.com:8080", 8443, 302, _TLS, id="port-replaced"
        ),
        pytest.param(
            "GET",
            "/secure/a",
            "example.com:8080",
            443,
            302,
            "https://example.com/secure/a",
            id="port-443-omitted",
        ),
        pytest.param(
            "GET",
            "/secure/a",
            "[::1]:8080",
            8443,
            302,
            "https://[::1]:8443/secure/a",
            id="ipv6-host",
        ),
        pytest.param("POST", "/secure/a", "example.com", 8443, 403, None, id="post"),
        pytest.param("PUT", "/secure/a", "example.com", 8443, 403, None, id="put"),
        pytest.param("GET", "/secure/a", "example.com", 0, 403, None, id="no-port"),
    ],
)
def test_secure_transport_redirect(
    build: Callable[..., ConstraintSecurityHandler],
    make_client: Callable[[Any], Client],
    recording_app: Any,
    method: str,
    url: str,
    host: str,
    port: int,
    expected: int,
    location: str | None,
) -> None:
    client = make_client(build(secure_port=port))
    response = client.open(url, method=method, headers={"Host": host})
    assert (response.status_code, response.headers.get("Location")) == (
        expected,
        location,
    )
    assert not recording_app.called


def test_secure_redirect_keeps_raw_target(
    build: Callable[..., ConstraintSecurityHandler],
    raw_environ: Callable[..., dict[str, Any]],
    call_wsgi: Callable[[Any, dict[str, Any]], Response],
) -> None:
    environ = raw_environ("/secure/a%20b;v=1?q=%2F", headers={"Host": "h.test"})
    response = call_wsgi(build(secure_port=8443), environ)
    assert response.status_code == 302
    assert response.headers["Location"] == "https://h.test:8443/secure/a%20b;v=1?q=%2F"


def test_secure_redirect_query_outside_raw_target(
    build: Callable[..., ConstraintSecurityHandler],
    make_client: Callable[[Any], Client],
) -> None:
    # werkzeug's client leaves query_string= out of RAW_URI / REQUEST_URI.
    client = make_client(build(secure_port=8443))
    response = client.get("/secure/a", query_string={"x": "1"})
    assert response.headers["Location"] == "https://localhost:8443/secure/a?x=1"


def test_secure_redirect_server_name_without_host(
    build: Callable[..., ConstraintSecurityHandler],
    raw_environ: Callable[..., dict[str, Any]],
    call_wsgi: Callable[[Any, dict[str, Any]], Response],
) -> None:
    environ = raw_environ("/secure/a")
    del environ["HTTP_HOST"]
    environ["SERVER_NAME"] = "internal.test"
    response = call_wsgi(build(secure_port=8443), environ)
    assert response.headers["Location"] == "https://internal.test:8443/secure/a"


def test_secure_before_authentication(
    build: Callable[..., ConstraintSecurityHandler],
    make_client: Callable[[Any], Client],
    spy: SpyAuthenticator,
) -> None:
    response = make_client(build(secure_port=8443)).get("/vault/k", auth=ALICE)
    assert response.status_code == 302
    assert spy.calls == 0


@pytest.mark.parametrize(
    ("path", "auth", "expected"),
    [
        pytest.param("/secure/a", None, 200, id="allowed"),
        pytest.param("/vault/k", ALICE, 200, id="role-held"),
        pytest.param("/vault/k", BOB, 403, id="role-missing"),
    ],
)
def test_secure_transport_https_passes(
    build: Callable[..., ConstraintSecurityHandler],
    make_client: Callable[[Any], Client],
    path: str,
    auth: Any,
    expected: int,
) -> None:
    client = make_client(build(secure_port=8443))
    response = client.get(path, auth=auth, base_url="https://example.com/")
    assert response.status_code == expected


@pytest.mark.parametrize(
    ("proxy", "expected"),
    [
        pytest.param(None, 403, id="untrusted"),
        pytest.param(ProxyConfig(x_for=1), 403, id="only-for-trusted"),
        pytest.param(ProxyConfig(x_proto=1), 200, id="proto-trusted"),
    ],
)
def test_forwarded_proto_needs_proxy_config(
    build: Callable[..., ConstraintSecurityHandler],
    make_client: Callable[[Any], Client],
    proxy: ProxyConfig | None,
    expected: int,
) -> None:
    client = make_client(build(proxy=proxy))
    response = client.get("/secure/a", headers={"X-Forwarded-Proto": "https"})
    assert response.status_code == expected


def test_forwarded_prefix_app_sees_both_parts(
    build: Callable[..., ConstraintSecurityHandler],
    make_client: Callable[[Any], Client],
    recording_app: Any,
) -> None:
    client = make_client(build(proxy=ProxyConfig(x_prefix=1)))
    response = client.get("/healthz", headers={"X-Forwarded-Prefix": "/p"})
    assert response.status_code == 200
    assert (recording_app.last.script_name, recording_app.last.path_info) == (
        "/p",
        "/healthz",
    )


def test_forwarded_prefix_guarded_path(
    build: Callable[..., ConstraintSecurityHandler],
    make_client: Callable[[Any], Client],
) -> None:
    client = make_client(build(proxy=ProxyConfig(x_prefix=1)))
    response = client.get("/closed", headers={"X-Forwarded-Prefix": "/p"})
    assert response.status_code == 403


def test_forwarded_prefix_kept_in_secure_redirect(
    build: Callable[..., ConstraintSecurityHandler],
    make_client: Callable[[Any], Client],
) -> None:
    handler = build(secure_port=443, proxy=ProxyConfig(x_prefix=1))
    response = make_client(handler).get(
        "/secure/a?x=1", headers={"X-Forwarded-Prefix": "/p"}
    )
    assert response.status_code == 302
    assert response.headers["Location"] == "https://localhost/p/secure/a?x=1"


# Failures of the engine.


def test_authenticator_exception_answers_500(
    build: Callable[..., ConstraintSecurityHandler],
    make_client: Callable[[Any], Client],
    recording_app: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.CRITICAL, logger="securityhandler.handler")
    chain = [RaisingAuthenticator(RuntimeError("engine broke"))]
    response = make_client(build(authenticators=chain)).get("/admin/x")
    assert response.status_code == 500
    assert not recording_app.called
    assert b"engine broke" not in response.get_data()


def test_keys_unavailable_answers_503(
    build: Callable[..., ConstraintSecurityHandler],
    make_client: Callable[[Any], Client],
    recording_app: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.CRITICAL, logger="securityhandler.handler")
    chain = [RaisingAuthenticator(KeysUnavailableError("JWKS down", retry_after=17))]
    response = make_client(build(authenticators=chain)).get("/admin/x")
    assert (response.status_code, response.headers.get("Retry-After")) == (503, "17")
    assert not recording_app.called


# Report-only.


@pytest.mark.parametrize(
    ("method", "url", "auth", "reason"),
    [
        pytest.param("GET", "/closed", None, "forbidden", id="forbidden"),
        pytest.param("PUT", "/x", None, "uncovered_method", id="uncovered"),
        pytest.param("GET", "/secure/a", None, "insecure_transport", id="insecure"),
        pytest.param("GET", "/admin/x", None, "no_credential", id="no-credential"),
        pytest.param("GET", "/admin/x", BOB, "missing_role", id="missing-role"),
        pytest.param("GET", "/a/%2e%2e/closed", None, "ambiguous_target", id="target"),
    ],
)
def test_report_only_calls_app(
    build: Callable[..., ConstraintSecurityHandler],
    raw_environ: Callable[..., dict[str, Any]],
    call_wsgi: Callable[[Any, dict[str, Any]], Response],
    recording_app: Any,
    caplog: pytest.LogCaptureFixture,
    method: str,
    url: str,
    auth: Any,
    reason: str,
) -> None:
    caplog.set_level(logging.INFO, logger="securityhandler.audit")
    headers = {} if auth is None else {"Authorization": _basic(*auth)}
    environ = raw_environ(url, method=method, headers=headers)
    response = call_wsgi(build(enforce=False), environ)
    assert (response.status_code, recording_app.called) == (200, True)
    denials = [r for r in _audit(caplog) if r["decision"] != "authenticated"]
    assert [(r["decision"], r["reason"]) for r in denials] == [("would_deny", reason)]


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


# Audit records.


def _denial(
    reason: str, constraint: str, path: str, principal: str | None = None
) -> dict[str, str]:
    record = {"decision": "deny", "reason": reason, "constraint": constraint}
    record.update(method="GET", path=path)
    if principal is not None:
        record["principal"] = principal
    return record


@pytest.mark.parametrize(
    ("url", "auth", "expected"),
    [
        pytest.param(
            "/admin/x",
            BOB,
            _denial("missing_role", "admin", "/admin/x", principal="bob"),
            id="missing-role",
        ),
        pytest.param(
            "/closed", None, _denial("forbidden", "closed", "/closed"), id="forbidden"
        ),
        pytest.param(
            "/me", None, _denial("no_credential", "me", "/me"), id="no-credential"
        ),
    ],
)
def test_audit_record_fields(
    client: Client,
    caplog: pytest.LogCaptureFixture,
    url: str,
    auth: Any,
    expected: dict[str, str],
) -> None:
    caplog.set_level(logging.INFO, logger="securityhandler.audit")
    client.get(url, auth=auth)
    denial = _audit(caplog)[-1]
    assert {key: denial.get(key) for key in expected} == expected
    assert "principal" in expected or "principal" not in denial


def test_audit_authentication_never_logs_password(
    client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="securityhandler.audit")
    client.get("/admin/x", auth=ALICE)
    record = _audit(caplog)[-1]
    assert (record["decision"], record["principal"]) == ("authenticated", "alice")
    assert "a-pw" not in caplog.text


def test_identity_object_reaches_app(client: Client, recording_app: Any) -> None:
    recording_app.ask_identity = True
    client.get("/admin/x", auth=ALICE)
    identity = recording_app.last.identity
    assert isinstance(identity, UserIdentity)
    assert (identity.name, identity.roles) == ("alice", {"admin"})
