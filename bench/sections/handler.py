"""Handler overhead per request, against calling the bare WSGI app directly.

Three requests through one realistic configuration: an allowed path (the app
does not ask for the identity), a Basic-authenticated path (steady state,
with the login service's credential cache warm; the first request, which
pays for the scrypt verification, is reported on its own row against a raw
werkzeug ``check_password_hash``), and a forbidden path (403).

Every call gets a fresh copy of the environ; the cost of that copy (and of
the loop around it) is measured in the same rounds and subtracted from both
sides, so the figures are the app's cost and the handler's cost alone. The
audit logger is left as an application without logging set up leaves it
(records below WARNING are dropped); two rows show the cost with audit
records built and handed to a ``NullHandler``.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from harness import (
    Row,
    Settings,
    measure,
    measure_once,
    micros,
    millis,
    net,
    ratio,
)
from werkzeug.security import check_password_hash, generate_password_hash
from workload import copy_loop, hello_app, make_environ, serve, serve_loop

from securityhandler import (
    BasicAuthenticator,
    Constraint,
    ConstraintMapping,
    ConstraintSecurityHandler,
    HashLoginService,
)
from securityhandler.audit import AUDIT_LOGGER
from securityhandler.login import LoginService

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication, WSGIEnvironment

TITLE = "handler overhead per request vs the bare WSGI app"

#: The allowed-path target from the core issue, in microseconds.
ALLOWED_TARGET_US = 5.0

_USER = "alice"
_PASSWORD = "correct horse battery staple"

MAPPINGS = (
    ConstraintMapping(("/healthz",), Constraint.allowed(name="health")),
    ConstraintMapping(("/public/*",), Constraint.allowed(name="public")),
    ConstraintMapping(("*.css",), Constraint.allowed(name="styles")),
    ConstraintMapping(("/admin/*",), Constraint.with_roles("admin", name="admin")),
    ConstraintMapping(
        ("/api/*",),
        Constraint.any_user(name="api-read"),
        methods=frozenset({"GET", "HEAD"}),
    ),
    ConstraintMapping(
        ("/api/*",),
        Constraint.with_roles("writer", name="api-write"),
        omit_methods=frozenset({"GET", "HEAD"}),
    ),
    ConstraintMapping(("/internal/*",), Constraint.forbidden(name="internal")),
)


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


ALLOWED = make_environ("GET", "/public/articles/2024/hello-world", "page=2")
AUTHENTICATED = make_environ(
    "GET",
    "/api/orders/42",
    "expand=items",
    {"HTTP_AUTHORIZATION": _basic(_USER, _PASSWORD)},
)
DENIED = make_environ("GET", "/internal/metrics", "")


def _login_service(credential: str) -> LoginService:
    """Return a realm holding one user, or raise if the realm cannot be built."""
    users = {_USER: {"password": credential, "roles": ["reader"]}}
    service: LoginService = HashLoginService("staff", users=users)
    return service


def _handler(
    app: WSGIApplication, service: LoginService | None
) -> ConstraintSecurityHandler:
    authenticators = [] if service is None else [BasicAuthenticator(service, "bench")]
    return ConstraintSecurityHandler(app, MAPPINGS, authenticators, realm="bench")


def _status(app: WSGIApplication, environ: WSGIEnvironment) -> str:
    seen: list[str] = []

    def start_response(status: str, headers: list[tuple[str, str]], *_: Any) -> Any:
        seen.append(status)
        return lambda data: None

    for _chunk in app(dict(environ), start_response):
        pass
    return seen[0] if seen else "none"


@contextmanager
def _audit_to_null() -> Iterator[None]:
    """Build every audit record and hand it to a NullHandler (no I/O)."""
    logger = logging.getLogger(AUDIT_LOGGER)
    saved = (logger.level, logger.propagate, list(logger.handlers))
    logger.handlers[:] = [logging.NullHandler()]
    logger.setLevel(logging.INFO)
    logger.propagate = False
    try:
        yield
    finally:
        logger.setLevel(saved[0])
        logger.propagate = saved[1]
        logger.handlers[:] = saved[2]


def run(settings: Settings) -> list[Row]:
    """Measure the three request kinds, the first Basic request and Flask."""
    credential = generate_password_hash(_PASSWORD, method="scrypt")
    try:
        service: LoginService | None = _login_service(credential)
    except Exception as exc:
        # A realm that cannot be built must not cost the other figures.
        service, missing = None, f"HashLoginService unusable: {exc!r}"
    handler = _handler(hello_app, service)
    requests = {"allowed": ALLOWED, "denied": DENIED}
    if service is not None:
        requests["basic"] = AUTHENTICATED
    wrong = _wrong_statuses(handler, requests)

    rows = _steady_rows(handler, requests, settings)
    if service is None:
        rows[1:1] = [_missing(_FIGURES["basic"], missing)]
    else:
        rows.append(_first_request_row(credential, settings))
    rows.extend(_flask_rows(settings))
    if wrong:
        rows.append(_missing("status check", "WRONG STATUS: " + wrong))
    return rows


_FIGURES = {
    "allowed": "allowed path (no identity asked)",
    "basic": "Basic, steady state (cached)",
    "denied": "denied path (403 forbidden)",
}
_EXPECTED = {"allowed": "200", "basic": "200", "denied": "403"}


def _wrong_statuses(
    handler: ConstraintSecurityHandler, requests: dict[str, WSGIEnvironment]
) -> str:
    """Name any request that does not get its expected status."""
    wrong = []
    for name, environ in requests.items():
        got = _status(handler, environ)
        if not got.startswith(_EXPECTED[name]):
            wrong.append(f"{name} answered {got!r}, expected {_EXPECTED[name]}")
    return "; ".join(wrong)


def _steady_rows(
    handler: ConstraintSecurityHandler,
    requests: dict[str, WSGIEnvironment],
    settings: Settings,
) -> list[Row]:
    loops = {
        "copy": copy_loop(ALLOWED),
        "bare": serve_loop(hello_app, ALLOWED),
        **{name: serve_loop(handler, environ) for name, environ in requests.items()},
    }
    samples = measure(loops, settings)
    audited_names = [name for name in ("basic", "denied") if name in requests]
    with _audit_to_null():
        audited = measure(
            {name: loops[name] for name in ("copy", "bare", *audited_names)},
            settings,
        )

    copy = micros(samples["copy"])
    rows = [
        replace(
            _overhead_row(_FIGURES["allowed"], samples, "allowed", ALLOWED_TARGET_US),
            note=f"environ copy + loop, {copy.median:.3f} µs, subtracted from "
            "both sides",
        )
    ]
    rows += [
        _overhead_row(_FIGURES[name], samples, name)
        for name in ("basic", "denied")
        if name in requests
    ]
    rows += [
        _overhead_row(f"{_FIGURES[name]}, audit on", audited, name)
        for name in audited_names
    ]
    rows[-1] = replace(rows[-1], note="audit on: records built, sent to a NullHandler")
    return rows


def _overhead_row(
    figure: str,
    samples: dict[str, list[float]],
    name: str,
    target: float | None = None,
) -> Row:
    value = micros(net(samples[name], samples["copy"]))
    peer = micros(net(samples["bare"], samples["copy"]))
    delta = micros(net(samples[name], samples["bare"]))
    return Row(
        figure,
        value,
        "bare app",
        peer,
        ratio(value, peer),
        delta,
        target=f"overhead < {target:g} µs" if target is not None else "",
        passed=None if target is None else delta.median < target,
    )


def _first_request_row(credential: str, settings: Settings) -> Row:
    """Time the first Basic request of a fresh login service (empty cache)."""

    def first_request() -> Callable[[], object]:
        handler = _handler(hello_app, _login_service(credential))
        environ = dict(AUTHENTICATED)
        return lambda: serve(handler, environ)

    def raw_check() -> Callable[[], object]:
        return lambda: check_password_hash(credential, _PASSWORD)

    samples = measure_once({"first": first_request, "raw": raw_check}, settings)
    value = millis(samples["first"])
    peer = millis(samples["raw"])
    return Row(
        "Basic, first request (scrypt verify)",
        value,
        "werkzeug check_password_hash",
        peer,
        ratio(value, peer),
        note=f"{settings.samples} fresh login services, one request each",
    )


def _flask_rows(settings: Settings) -> list[Row]:
    """Put the allowed-path overhead beside a hello-world Flask request."""
    try:
        from flask import Flask
    except ImportError:
        return [_missing("allowed path, Flask app", "Flask is not installed")]
    flask_app = Flask("bench")

    @flask_app.get("/public/<path:rest>")
    def public(rest: str) -> str:
        return "Hello, world!"

    wrapped = _handler(flask_app.wsgi_app, None)
    samples = measure(
        {
            "copy": copy_loop(ALLOWED),
            "bare": serve_loop(flask_app.wsgi_app, ALLOWED),
            "allowed": serve_loop(wrapped, ALLOWED),
        },
        settings,
    )
    row = _overhead_row("allowed path, Flask hello-world app", samples, "allowed")
    # A Flask request varies by more than the handler costs: the ratio of
    # medians is the figure; a per-round difference would be noise.
    return [
        replace(
            row,
            peer_name="bare Flask",
            delta=None,
            note="the allowed-path overhead is within a Flask request's noise",
        )
    ]


def _missing(figure: str, reason: str) -> Row:
    return Row(figure, None, note=reason)
