"""Shared fixtures: a recording WSGI app, clients, raw requests, a user store."""

from __future__ import annotations

import hmac
import logging
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote_to_bytes

import pytest
from werkzeug.test import Client, EnvironBuilder
from werkzeug.wrappers import Response

from securityhandler.identity import DECISION_KEY, UserIdentity, get_identity
from securityhandler.logs import JsonFormatter
from securityhandler.realm import HashLoginService

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

# The test kit's fixtures (local_issuer, mint_token), as an installed
# securityhandler provides them through its pytest11 entry point.
pytest_plugins = ["securityhandler.testing"]


# Passwords the tests send. No log line may hold one: the autouse fixture
# below checks every record of every test against this set and against the
# shapes of credentials (JWTs, Basic and Bearer header values).
PASSWORDS_IN_TESTS: set[str] = {"wonderland", "builder"}
_CREDENTIAL_SHAPES = re.compile(
    r"eyJ[\w-]{4,}\.[\w-]{4,}\.|(?i:\b(?:basic|bearer)\s+[A-Za-z0-9+/=._~-]{12,})"
)


# Test passwords that are also words our own log messages use.
_WORDS_IN_MESSAGES = frozenset({"password", "secret"})


class _CaptureFormatter(JsonFormatter):
    """The JSON formatter, under its own class so tests of logging setup can
    tell the handlers they installed from this one."""


class _Capture(logging.Handler):
    """Keep every record, formatted as the JSON log line it would become."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(_CaptureFormatter())
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record) + " " + repr(record.__dict__))


@pytest.fixture(autouse=True, scope="session")
def _remember_passwords() -> Iterable[None]:
    """Add every password a test sends to a realm login to the checked set."""
    original = HashLoginService.login

    def login(self: HashLoginService, username: str, password: str) -> Any:
        PASSWORDS_IN_TESTS.add(password)
        return original(self, username, password)

    HashLoginService.login = login  # type: ignore[method-assign]
    yield
    HashLoginService.login = original  # type: ignore[method-assign]


@pytest.fixture(autouse=True)
def _no_secret_in_logs() -> Iterable[None]:
    """Fail any test whose log records carry a password, token or credential.

    Every logger is opened to DEBUG for the test, so debug lines are checked
    too. Each record is checked as formatted JSON and as its raw attributes.
    """
    root = logging.getLogger()
    capture = _Capture()
    level = root.level
    root.addHandler(capture)
    root.setLevel(logging.DEBUG)
    try:
        yield
    finally:
        root.removeHandler(capture)
        root.setLevel(level)
    for line in capture.lines:
        shape = _CREDENTIAL_SHAPES.search(line)
        assert shape is None, f"credential-shaped text logged: {line[:300]}"
        leaked = [
            p
            for p in PASSWORDS_IN_TESTS
            if len(p) >= 6 and p not in _WORDS_IN_MESSAGES and p in line
        ]
        assert not leaked, f"password logged: {line[:300]}"


@dataclass(frozen=True)
class Seen:
    """What the application saw of one request."""

    method: str
    path_info: str
    script_name: str
    remote_user: str | None
    auth_type: str | None
    decision: Any
    identity: UserIdentity | None


class RecordingApp:
    """A WSGI application that notes every request that reaches it.

    :param ask_identity: call :func:`securityhandler.get_identity` on each
        request, as an application that wants to know the user does.
    """

    def __init__(self, *, ask_identity: bool = False) -> None:
        self.ask_identity = ask_identity
        self.calls: list[Seen] = []

    @property
    def called(self) -> bool:
        """Tell whether any request reached the application."""
        return bool(self.calls)

    @property
    def last(self) -> Seen:
        """Return what the application saw of the latest request."""
        return self.calls[-1]

    def __call__(
        self, environ: WSGIEnvironment, start_response: StartResponse
    ) -> Iterable[bytes]:
        identity = get_identity(environ) if self.ask_identity else None
        self.calls.append(
            Seen(
                method=environ["REQUEST_METHOD"],
                path_info=environ.get("PATH_INFO", ""),
                script_name=environ.get("SCRIPT_NAME", ""),
                remote_user=environ.get("REMOTE_USER"),
                auth_type=environ.get("AUTH_TYPE"),
                decision=environ.get(DECISION_KEY),
                identity=identity,
            )
        )
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"app\n"]


class MemoryLoginService:
    """A :class:`~securityhandler.login.LoginService` over a dict of users.

    :param users: ``{name: (password, roles)}``.
    :param name: the service name, used as the identity's issuer.
    """

    def __init__(
        self,
        users: Mapping[str, tuple[str, Iterable[str]]],
        name: str = "memory",
    ) -> None:
        self.name = name
        PASSWORDS_IN_TESTS.update(password for password, _ in users.values())
        self._users = {
            user: (password, frozenset(roles))
            for user, (password, roles) in users.items()
        }

    def login(self, username: str, password: str) -> UserIdentity | None:
        """Return the identity of ``username`` if ``password`` is theirs."""
        stored, roles = self._users.get(username, ("", frozenset()))
        good = hmac.compare_digest(stored.encode(), password.encode())
        if not good or username not in self._users:
            return None
        return UserIdentity(username, roles, "BASIC", issuer=self.name)

    def roles(self) -> frozenset[str]:
        """Return every role some user holds."""
        return frozenset().union(*(roles for _, roles in self._users.values()))


@pytest.fixture
def recording_app() -> RecordingApp:
    """Return a fresh application that records what reaches it."""
    return RecordingApp()


@pytest.fixture
def make_client() -> Callable[[WSGIApplication], Client]:
    """Return a factory of werkzeug test clients."""
    return Client


@pytest.fixture
def make_login_service() -> Callable[..., MemoryLoginService]:
    """Return a factory of in-memory login services.

    Call it with ``{name: (password, roles)}`` and an optional ``name=``.
    """
    return MemoryLoginService


def _raw_environ(
    raw_target: str,
    *,
    method: str = "GET",
    raw_key: str | None = "RAW_URI",
    script_name: str = "",
    scheme: str = "http",
    headers: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    environ: dict[str, Any] = EnvironBuilder(
        path="/", method=method, headers=dict(headers or {})
    ).get_environ()
    del environ["RAW_URI"], environ["REQUEST_URI"]
    path, _, query = raw_target.partition("?")
    if "://" in path:
        path = "/" + path.split("://", 1)[1].partition("/")[2]
    # What a server such as gunicorn puts in PATH_INFO: the decoded bytes.
    decoded = unquote_to_bytes(path).decode("latin-1")
    if script_name and decoded.startswith(script_name):
        decoded = decoded[len(script_name) :]
    environ.update(PATH_INFO=decoded, SCRIPT_NAME=script_name, QUERY_STRING=query)
    environ["wsgi.url_scheme"] = scheme
    if raw_key is not None:
        environ[raw_key] = raw_target
    return environ


@pytest.fixture
def raw_environ() -> Callable[..., dict[str, Any]]:
    """Return a factory of environs carrying a raw request target.

    The werkzeug test client normalises paths, so tests of raw targets build
    the environ here: ``raw_environ("/a/%2e%2e/b", raw_key="REQUEST_URI")``.
    The raw target goes under ``raw_key`` verbatim (query included, as
    gunicorn sends it); ``PATH_INFO`` holds its percent-decoded form.
    ``raw_key=None`` leaves only ``PATH_INFO``.
    """
    return _raw_environ


@pytest.fixture
def call_wsgi() -> Callable[[WSGIApplication, dict[str, Any]], Response]:
    """Return a function that runs a WSGI app on an environ, buffered."""

    def call(app: WSGIApplication, environ: dict[str, Any]) -> Response:
        return Response.from_app(app, environ, buffered=True)

    return call
