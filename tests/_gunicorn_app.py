"""A small WSGI application that ``tests/test_gunicorn_config.py`` serves with gunicorn.

It runs in a gunicorn subprocess started with the Dockerfile's command, the
application argument swapped for ``tests._gunicorn_app:app``.

- ``/healthz`` answers 200.
- ``/slow`` logs ``slow request started``, then answers 200 only once its
  worker has received SIGTERM: the request is in flight when the shutdown
  begins, and the test releases it by sending the signal, no clock involved.
- ``/admin/*`` is forbidden and ``/private/*`` needs the ``user`` role over
  Basic authentication, so requests there write audit records.
"""

from __future__ import annotations

import hmac
import logging
import signal
import threading
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from securityhandler import (
    BasicAuthenticator,
    Constraint,
    ConstraintMapping,
    ConstraintSecurityHandler,
    UserIdentity,
)

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

log = logging.getLogger(__name__)

# Set by the worker's SIGTERM handler; /slow waits for it.
_stopping = threading.Event()

#: The one user's password; the tests check no log line ever shows it.
PASSWORD = "correct-horse-battery"


class _OneUser:
    """A login service holding ``alice`` with role ``user``."""

    name = "test-users"

    def login(self, username: str, password: str) -> UserIdentity | None:
        ok = hmac.compare_digest(password.encode(), PASSWORD.encode())
        if username == "alice" and ok:
            return UserIdentity("alice", frozenset({"user"}), issuer=self.name)
        return None

    def roles(self) -> frozenset[str]:
        return frozenset({"user"})


def _inner(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
    if environ["PATH_INFO"] == "/slow":
        log.info("slow request started")
        _stopping.wait()
        answer = b"slow done after SIGTERM\n"
    else:
        answer = b"ok\n"
    start_response(
        "200 OK",
        [("Content-Type", "text/plain"), ("Content-Length", str(len(answer)))],
    )
    return [answer]


def _watch_sigterm() -> None:
    """Chain onto the SIGTERM handler gunicorn gave this worker.

    Gunicorn installs its signal handlers before it imports the application,
    so the handler found here is the worker's; it still runs after ours.
    """
    previous = signal.getsignal(signal.SIGTERM)

    def handler(signum: int, frame: Any) -> None:
        _stopping.set()
        if callable(previous):
            previous(signum, frame)

    signal.signal(signal.SIGTERM, handler)


_watch_sigterm()

app = ConstraintSecurityHandler(
    _inner,
    [
        ConstraintMapping(("/admin/*",), Constraint.forbidden(name="no-admin")),
        ConstraintMapping(("/private/*",), Constraint.with_roles("user", name="users")),
    ],
    [BasicAuthenticator(_OneUser())],
)
