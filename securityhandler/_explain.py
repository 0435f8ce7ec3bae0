"""``securityhandler explain``: why a request is allowed or denied.

The verdict is the real handler's: the request is built as a WSGI environ
and sent through :class:`~securityhandler.handler.ConstraintSecurityHandler`
(proxy headers, report-only mode and all) with a stub application behind it.
Each authenticator of the chain is wrapped to record the state it answered.
The steps are then told with the pipeline's own primitives on that same
environ: :func:`~securityhandler._target.canonical_target`,
:meth:`~securityhandler.handler.ConstraintSecurityHandler.find_entry`,
:meth:`~securityhandler.constraints.SpecEntry.role_info` and
:meth:`~securityhandler.constraints.SpecEntry.mappings_for`.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import datetime
import json
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote_to_bytes, urlsplit, urlunsplit

from werkzeug.test import EnvironBuilder

from ._lint import (
    EXIT_FOUND,
    EXIT_OK,
    authorization_name,
    config_error,
    describe,
    emit,
    load,
    quoted,
    spec_kind,
    spec_line,
)
from ._target import AmbiguousTargetError, canonical_target
from .authentication import (
    UNAUTHENTICATED,
    AuthenticationState,
    Authenticator,
    Failed,
    Headers,
    ResponseSent,
    Succeeded,
    authorization_header,
)
from .bearer import (
    IAP_HEADER,
    BearerAuthenticator,
    IapAuthenticator,
    token_failure,
)
from .config import SecurityConfig
from .constraints import Authorization, ConstraintMapping, RoleInfo, SpecEntry, combine
from .errors import ConfigError, KeysUnavailableError
from .handler import ConstraintSecurityHandler, Decision
from .identity import DECISION_KEY, UserIdentity
from .realm import HashLoginService
from .tokens import InvalidTokenError, TokenIssuer, TokenLoginService

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

#: What each ambiguous-target reason means.
TARGET_REASONS: Mapping[str, str] = {
    "encoded_separator": "'%2F' inside a segment: servers and apps split it apart",
    "encoded_percent": "'%25', an encoded '%': a second decoding changes the path",
    "encoded_dot_segment": "an encoded dot segment ('%2e')",
    "dot_segment_parameter": "a ';' parameter on a '.' or '..' segment",
    "empty_segment": "an empty segment ('//') inside the path",
    "above_root": "'..' above the root",
    "backslash": "a backslash",
    "control_character": "a control character or '%00'",
    "invalid_utf8": "bytes that are not UTF-8",
    "utf16_encoding": "a '%uXXXX' escape",
    "bad_percent_encoding": "a '%' not followed by two hex digits",
    "fragment": "a '#' fragment",
    "not_origin_form": "a target that is not an absolute path",
    "outside_script_name": "a path outside SCRIPT_NAME, the application's mount",
}


@dataclass(frozen=True)
class Query:
    """The request to explain.

    :param method: the HTTP method.
    :param target: the raw request target: path and query, as sent.
    :param headers: request headers, ``Authorization`` included.
    :param https: whether the request arrives over HTTPS.
    :param identity: skip authentication and use this identity.
    :param verify: verify token signatures; ``False`` checks claims only.
    :param token: a token, sent as ``Authorization: Bearer``, or in IAP's
        header when the chain reads IAP assertions and no bearer tokens.
    """

    method: str
    target: str
    headers: tuple[tuple[str, str], ...] = ()
    https: bool = False
    identity: UserIdentity | None = None
    verify: bool = True
    token: str | None = None


def query_from_arguments(
    *,
    method: str,
    target: str,
    headers: Sequence[str] = (),
    token: str | None = None,
    user: str | None = None,
    roles: str | None = None,
    password_stdin: bool = False,
    https: bool = False,
    verify: bool = True,
) -> Query:
    """Build a :class:`Query` from the command line of ``explain``.

    :raises ValueError: for a malformed header or an incomplete ``--user``.
    """
    parsed = [_header(text) for text in headers]
    identity = None
    if (roles is not None or password_stdin) and user is None:
        raise ValueError("--roles and --password-stdin need --user")
    if user is not None and roles is not None:
        names = frozenset(r.strip() for r in roles.split(",") if r.strip())
        identity = UserIdentity(user, names, "BASIC", "--user")
    elif user is not None and password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
        parsed.append(("Authorization", basic_authorization(user, password)))
    elif user is not None:
        raise ValueError("--user needs --roles A,B or --password-stdin")
    sent = {name.lower() for name, _ in parsed}
    if token is not None and "authorization" in sent:
        raise ValueError("--token and an Authorization header: give one")
    return Query(method, target, tuple(parsed), https, identity, verify, token)


def _header(text: str) -> tuple[str, str]:
    name, colon, value = text.partition(":")
    if not colon or not name.strip() or name != name.strip():
        raise ValueError(f"Expected --header 'Name: value', got {text.split(':')[0]!r}")
    return name, value.strip()


def basic_authorization(user: str, password: str) -> str:
    """Return the ``Authorization`` value of Basic credentials (RFC 7617)."""
    pair = f"{user}:{password}".encode()
    return "Basic " + base64.b64encode(pair).decode("ascii")


@dataclass
class Step:
    """One step of the pipeline, told for a human and for a script.

    :param name: ``target``, ``spec``, ``method``, ``transport``,
        ``authentication`` or ``authorization``.
    :param summary: one line.
    :param ok: whether the request passed it; ``None`` when it does not
        decide anything.
    :param details: further lines.
    :param data: the facts, for ``--format json``.
    """

    name: str
    summary: str
    ok: bool | None = None
    details: list[str] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)


@dataclass
class Explanation:
    """The verdict on a request and the steps that led to it.

    :param decision: ``allow``, ``deny`` or ``would_deny`` (report-only).
    :param status: the status the client gets (``200``: the app is called).
    :param reason: the reason code of the decision, as the audit record has it.
    :param message: the reason in words.
    """

    method: str
    target: str
    scheme: str
    decision: str
    status: int
    reason: str
    message: str
    steps: list[Step]
    headers: Headers = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def denied(self) -> bool:
        """Tell whether the handler denies (or would deny) the request."""
        return self.decision != "allow"

    def as_dict(self) -> dict[str, Any]:
        """Return the explanation as a JSON-ready dict."""
        return {
            "request": {
                "method": self.method,
                "target": self.target,
                "scheme": self.scheme,
            },
            "decision": self.decision,
            "status": self.status,
            "reason": self.reason,
            "message": self.message,
            "steps": [
                {"step": s.name, "ok": s.ok, "summary": s.summary, **s.data}
                for s in self.steps
            ],
            "headers": [list(header) for header in self.headers],
            "warnings": self.warnings,
        }

    def text(self) -> str:
        """Return the explanation for a terminal."""
        verdict = {"allow": "ALLOW", "deny": "DENY", "would_deny": "WOULD DENY"}
        lines = [f"!! {warning}" for warning in self.warnings]
        lines.append(
            f"{verdict[self.decision]} {self.status}: {self.message} [{self.reason}]"
        )
        lines.append(f"   {self.method} {self.target} over {self.scheme}")
        width = max((len(step.name) for step in self.steps), default=0)
        for number, step in enumerate(self.steps, 1):
            mark = {True: "ok", False: "NO", None: "--"}[step.ok]
            lines.append(f"{number}. {step.name:<{width}} {mark}  {step.summary}")
            lines.extend(f"   {'':<{width}}      {line}" for line in step.details)
        lines.extend(
            f"   answer header  {name}: {value}" for name, value in self.headers
        )
        return "\n".join(lines)


# -- The chain, recorded -----------------------------------------------------


class _Recorder(Authenticator):
    """Run an authenticator of the chain and keep the state it answered.

    :param inner: the configured authenticator.
    :param verify: ``False`` checks a token's claims but not its signature.
    """

    def __init__(self, inner: Authenticator, *, verify: bool = True) -> None:
        super().__init__(inner.realm)
        self.inner = inner
        self.auth_type = inner.auth_type
        self.verify = verify
        self.state: AuthenticationState | None = None
        self.error: KeysUnavailableError | None = None

    def validate_request(self, environ: WSGIEnvironment) -> AuthenticationState:
        """Ask the inner authenticator; record and return its state."""
        try:
            state = self._validate(environ)
        except KeysUnavailableError as exc:
            self.error = exc
            raise
        if isinstance(state, Failed):
            state = dataclasses.replace(state, authenticator=self)
        elif isinstance(state, Succeeded):
            state = Succeeded(state.identity, self)
        self.state = state
        return state

    def _validate(self, environ: WSGIEnvironment) -> AuthenticationState:
        service = getattr(self.inner, "login_service", None)
        if self.verify or not isinstance(service, TokenLoginService):
            return self.inner.validate_request(environ)
        token = _token_of(self.inner, environ)
        if not token:
            # No token, or a malformed header the inner one refuses unread.
            return self.inner.validate_request(environ)
        try:
            identity = service.verify_unsigned(token, auth_type=self.auth_type)
        except InvalidTokenError as exc:
            return token_failure(exc, self, "invalid_token")
        return Succeeded(identity, self)

    def challenge(self, error: str | None = None) -> str | None:
        """Return the inner authenticator's challenge."""
        return self.inner.challenge(error)

    def forbidden_headers(self) -> Headers:
        """Return the inner authenticator's headers for a 403."""
        return self.inner.forbidden_headers()

    def describe(self) -> str:
        """Return the inner authenticator's summary."""
        return self.inner.describe()


class _Given(Authenticator):
    """Answer every request with one identity (``--user U --roles a,b``)."""

    def __init__(self, identity: UserIdentity) -> None:
        super().__init__()
        self.identity = identity
        self.auth_type = identity.auth_type
        self.state: AuthenticationState | None = None
        self.error: KeysUnavailableError | None = None

    def validate_request(self, environ: WSGIEnvironment) -> AuthenticationState:
        """Return the given identity."""
        self.state = Succeeded(self.identity, self)
        return self.state

    def describe(self) -> str:
        """Return ``--user`` for the start-up log."""
        return "--user"


def _token_of(authenticator: Authenticator, environ: WSGIEnvironment) -> str | None:
    if isinstance(authenticator, IapAuthenticator):
        assertion: str | None = environ.get(IAP_HEADER)
        return assertion
    if isinstance(authenticator, BearerAuthenticator):
        return authorization_header(environ, "bearer")
    return None


def _token_header(config: SecurityConfig, token: str) -> tuple[str, str]:
    kinds = [type(a) for a in config.authenticators]
    if IapAuthenticator in kinds and BearerAuthenticator not in kinds:
        return "X-Goog-IAP-JWT-Assertion", token
    return "Authorization", f"Bearer {token}"


def _stub_app(environ: WSGIEnvironment, start_response: StartResponse) -> list[bytes]:
    """Stand for the application: the security layer let the request through."""
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b""]


# -- The request -------------------------------------------------------------


def build_environ(query: Query) -> WSGIEnvironment:
    """Return the WSGI environ of ``query``, raw target kept as gunicorn does."""
    target, scheme, host = query.target, "https" if query.https else "http", "localhost"
    if target.lower().startswith(("http://", "https://")):
        # A pasted URL: its scheme and host, and the rest as the target.
        url = urlsplit(target)
        scheme, host = url.scheme.lower(), url.netloc
        target = urlunsplit(("", "", url.path or "/", url.query, ""))
    path, _, query_string = target.partition("?")
    builder = EnvironBuilder(
        method=query.method,
        base_url=f"{scheme}://{host}/",
        headers=list(query.headers),
    )
    environ = builder.get_environ()
    environ["RAW_URI"] = environ["REQUEST_URI"] = target
    environ["PATH_INFO"] = _decoded(path)
    environ["QUERY_STRING"] = query_string
    return environ


def _decoded(path: str) -> str:
    """Return ``path`` percent-decoded as a WSGI server hands it over."""
    return unquote_to_bytes(path).decode("latin-1")


# -- Explaining --------------------------------------------------------------


@dataclass
class _Run:
    """What one pass through the real handler produced."""

    handler: ConstraintSecurityHandler
    environ: WSGIEnvironment
    status: int
    headers: Headers
    recorders: list[_Recorder | _Given]


def explain(
    config: SecurityConfig, query: Query, *, now: float | None = None
) -> Explanation:
    """Send ``query`` through the configured handler and tell why it got its answer.

    :param config: the loaded configuration.
    :param query: the request.
    :param now: the time for token words (``exp`` passed N minutes ago).
    """
    run = _run(config, query)
    teller = _Teller(config, query, run, time.time() if now is None else now)
    return teller.explanation()


def _run(config: SecurityConfig, query: Query) -> _Run:
    recorders: list[_Recorder | _Given]
    if query.identity is not None:
        recorders = [_Given(query.identity)]
    else:
        recorders = [_Recorder(a, verify=query.verify) for a in config.authenticators]
    chain: list[Authenticator] = list(recorders)
    handler = dataclasses.replace(config, authenticators=chain).build(_stub_app)
    if query.token is not None:
        query = dataclasses.replace(
            query, headers=(*query.headers, _token_header(config, query.token))
        )
    environ = build_environ(query)
    answered: list[tuple[str, Headers]] = []

    def start_response(status: str, headers: Headers, exc_info: Any = None) -> Any:
        answered.append((status, list(headers)))

    handler(environ, start_response)
    status, headers = answered[-1]
    shown = [(n, v) for n, v in headers if n in ("WWW-Authenticate", "Location")]
    return _Run(handler, environ, int(status[:3]), shown, recorders)


class _Teller:
    """Tell the steps of one run, in order, stopping where the handler stopped."""

    def __init__(
        self, config: SecurityConfig, query: Query, run: _Run, now: float
    ) -> None:
        self.config = config
        self.query = query
        self.run = run
        self.now = now
        self.handler = run.handler
        self.environ = run.environ
        self.steps: list[Step] = []
        self.warnings: list[str] = []
        self.message = ""
        decision = self.environ.get(DECISION_KEY)
        self.decision: Decision | None = (
            decision if isinstance(decision, Decision) else None
        )
        if not query.verify:
            self.warnings.append(
                "NOT VERIFIED: --no-verify checked the token's claims but not "
                "its signature; anyone can forge such a token"
            )

    def explanation(self) -> Explanation:
        """Return the explanation of the run."""
        reason = self._tell()
        decision = "allow"
        if reason not in _ALLOW_REASONS:
            decision = "deny" if self.run.status != 200 else "would_deny"
        if decision == "would_deny":
            self.warnings.append(
                "enforce is false (report-only): the request reaches the "
                "application anyway; the audit log records 'would_deny'"
            )
        return Explanation(
            self.query.method,
            self.query.target,
            str(self.environ.get("wsgi.url_scheme", "http")),
            decision,
            self.run.status,
            reason,
            self.message,
            self.steps,
            self.run.headers,
            self.warnings,
        )

    def _tell(self) -> str:
        """Add the steps; return the reason code."""
        try:
            path = canonical_target(dict(self.environ)).path
        except AmbiguousTargetError as exc:
            return self._ambiguous(exc.reason)
        self.steps.append(
            Step(
                "target",
                f"canonical path {path!r}",
                True,
                data={"path": path},
            )
        )
        if self.run.status == 500:
            return self._engine_failure()
        entry = self.handler.find_entry(path)
        if entry is None:
            return self._no_spec(path)
        self.steps.append(self._spec_step(path, entry))
        method = self.query.method
        info = entry.role_info(method)
        self.steps.append(self._method_step(entry, method, info))

        # Follow the branch the handler took, as its decision records it.
        code = self.decision.reason if self.decision is not None else None
        if code == "forbidden":
            return self._forbidden(entry, method)
        if code in ("uncovered_method", "uncovered_allowed"):
            return self._uncovered(entry, method)
        self.steps.append(self._transport(entry, info, code != "insecure_transport"))
        if code == "insecure_transport":
            return code
        if code == "allowed":
            return self._allowed()
        return self._authenticate_and_authorize(info, code == "authorized")

    def _engine_failure(self) -> str:
        self.message = (
            "The security check failed with an error (logged above): the "
            "handler answers 500 and never calls the app"
        )
        return "engine_failure"

    # -- target and spec -----------------------------------------------------

    def _ambiguous(self, reason: str) -> str:
        words = TARGET_REASONS.get(reason, reason)
        self.message = f"Ambiguous request target: {words} ({reason})"
        self.steps.append(
            Step("target", f"refused: {words}", False, data={"target_error": reason})
        )
        return "ambiguous_target"

    def _no_spec(self, path: str) -> str:
        self.message = f"No path spec matches {path!r}: nothing protects it"
        self.steps.append(
            Step("spec", "no path spec matches", None, data={"spec": None})
        )
        return "no_constraint"

    def _spec_step(self, path: str, entry: SpecEntry) -> Step:
        beaten = [
            other
            for other in self.handler.mappings.entries()
            if other is not entry and other.spec.matches(path)
        ]
        summary = f"{_spec_words(entry)} matched{self._place_of_spec(entry)}"
        details = [
            f"beat {_spec_words(other)}{self._place_of_spec(other)}: only the "
            "best-matching spec applies"
            for other in beaten
        ]
        return Step(
            "spec",
            summary,
            None,
            details,
            {
                "spec": self._spec_data(entry),
                "beaten": [self._spec_data(other) for other in beaten],
            },
        )

    def _spec_data(self, entry: SpecEntry) -> dict[str, Any]:
        return {
            "spec": entry.spec.spec,
            "kind": spec_kind(entry.spec),
            "line": spec_line(self.config, entry),
        }

    def _place_of_spec(self, entry: SpecEntry) -> str:
        line = spec_line(self.config, entry)
        return "" if line is None else f" (line {line})"

    # -- method and constraint -----------------------------------------------

    def _method_step(self, entry: SpecEntry, method: str, info: RoleInfo) -> Step:
        spec = entry.spec.spec
        own = method in entry.by_method
        mappings = entry.mappings_for(method)
        deny = self.handler.deny_uncovered_methods
        where = (
            f"{method}'s own entry of {spec!r}"
            if own
            else f"the entry of {spec!r} for methods no constraint names"
        )
        details = [f"constraint {self._constraint_words(m)}" for m in mappings]
        combined = describe(info, deny_uncovered=deny)
        if len(mappings) > 1:
            details.append(f"combined: {combined}")
        return Step(
            "method",
            f"{where}: {combined}",
            None,
            details,
            {
                "method": method,
                "own_entry": own,
                "constraints": [self._constraint_data(m) for m in mappings],
                "combined": _info_data(info, combined),
            },
        )

    def _label(self, mapping: ConstraintMapping) -> str:
        if mapping.constraint.name:
            return mapping.constraint.name
        index = next(i for i, m in enumerate(self.config.mappings) if m is mapping)
        return f"constraints[{index}]"

    def _constraint_words(self, mapping: ConstraintMapping) -> str:
        line = self.config.constraint_line(mapping)
        place = "" if line is None else f" (line {line})"
        methods = ""
        if mapping.methods:
            methods = f" for {', '.join(sorted(mapping.methods))}"
        elif mapping.omit_methods:
            methods = f" for all but {', '.join(sorted(mapping.omit_methods))}"
        demand = describe(combine([mapping.constraint]), deny_uncovered=True)
        return f"{self._label(mapping)}{place}: {demand}{methods}"

    def _constraint_data(self, mapping: ConstraintMapping) -> dict[str, Any]:
        constraint = mapping.constraint
        return {
            "name": self._label(mapping),
            "line": self.config.constraint_line(mapping),
            "paths": list(mapping.paths),
            "methods": sorted(mapping.methods),
            "omit_methods": sorted(mapping.omit_methods),
            "authorization": authorization_name(constraint.authorization),
            "roles": sorted(constraint.roles),
            "transport": constraint.transport.value,
        }

    def _labels(self, mappings: Iterable[ConstraintMapping]) -> str:
        """Return ``Constraint 'a'`` or ``Constraints 'a', 'b'``."""
        labels = [repr(self._label(m)) for m in mappings]
        return f"Constraint{'s' * (len(labels) > 1)} {', '.join(labels)}"

    def _forbidden(self, entry: SpecEntry, method: str) -> str:
        forbidding = [
            m
            for m in entry.mappings_for(method)
            if m.constraint.authorization is Authorization.FORBIDDEN
        ]
        self.message = (
            f"{self._labels(forbidding)} forbid{'s' * (len(forbidding) == 1)} "
            f"{method} on {entry.spec.spec!r}"
        )
        return "forbidden"

    def _uncovered(self, entry: SpecEntry, method: str) -> str:
        spec = entry.spec.spec
        if self.handler.deny_uncovered_methods:
            self.message = (
                f"No constraint of {spec!r} covers {method}, and "
                "deny_uncovered_methods is true"
            )
            return "uncovered_method"
        self.message = (
            f"No constraint of {spec!r} covers {method}; deny_uncovered_methods "
            "is false, so it passes unchecked"
        )
        return "uncovered_allowed"

    # -- transport -----------------------------------------------------------

    def _transport(self, entry: SpecEntry, info: RoleInfo, ok: bool) -> Step:
        scheme = self.environ.get("wsgi.url_scheme", "http")
        if not info.secure:
            return Step(
                "transport", "any transport accepted", None, data={"secure": False}
            )
        summary = f"HTTPS required; the request came over {scheme}"
        details = []
        if not ok:
            status = self.run.status
            answer = (
                f"302 to https (secure_port {self.handler.secure_port})"
                if status == 302
                else "403 (a redirect needs secure_port > 0 and GET or HEAD)"
            )
            details.append(f"answer: {answer}")
            # Secure transport survives only if every combined constraint
            # demands it: each one of them does.
            demanding = entry.mappings_for(self.query.method)
            self.message = (
                f"{self._labels(demanding)} demand{'s' * (len(demanding) == 1)} "
                f"HTTPS; the request came over {scheme} (pass --https, or trust "
                "the proxy's X-Forwarded-Proto)"
            )
        return Step(
            "transport", summary, ok, details, {"secure": True, "scheme": scheme}
        )

    # -- authentication and authorization ------------------------------------

    def _allowed(self) -> str:
        self.message = "The constraint lets everyone in"
        summary = "not needed: credentials are read only if the app asks"
        details = []
        state = self._preview()
        if isinstance(state, Succeeded):
            details.append(f"get_identity() would return {state.identity.name!r}")
        self.steps.append(Step("authentication", summary, None, details))
        return "allowed"

    def _preview(self) -> AuthenticationState | None:
        try:
            return self.handler.authenticate(dict(self.environ))
        except KeysUnavailableError:
            return None

    def _authenticate_and_authorize(self, info: RoleInfo, passed: bool) -> str:
        keys_error = next((r.error for r in self.run.recorders if r.error), None)
        if keys_error is not None:
            return self._keys_unavailable(keys_error)
        answered = [r for r in self.run.recorders if r.state is not None]
        tried = [self._tried_words(r) for r in answered]
        if not answered or not isinstance(answered[-1].state, Succeeded):
            return self._unauthenticated(
                answered[-1].state if answered else None, tried
            )
        identity = answered[-1].state.identity
        self.steps.append(self._identity_step(answered[-1], identity, tried))
        return self._authorize(identity, info, passed)

    def _tried_words(self, recorder: _Recorder | _Given) -> str:
        state = recorder.state
        if state is UNAUTHENTICATED:
            return f"{recorder.describe()}: no credential of its kind"
        return f"{recorder.describe()}: answered"

    def _keys_unavailable(self, exc: KeysUnavailableError) -> str:
        self.message = (
            f"No verification keys: {exc.description}; --no-verify shows the "
            "claims without them"
        )
        self.steps.append(Step("authentication", "keys unavailable", False))
        return exc.error

    def _unauthenticated(
        self, state: AuthenticationState | None, tried: list[str]
    ) -> str:
        if isinstance(state, ResponseSent):
            self.message = "The authenticator answered itself (a login redirect)"
            self.steps.append(
                Step("authentication", "answered by the authenticator", False, tried)
            )
            return state.reason
        if not isinstance(state, Failed):
            kinds = ", ".join(r.describe() for r in self.run.recorders) or "none"
            self.message = (
                "No credential: the request carries none the authenticators "
                f"read ({kinds})"
                if self.run.recorders
                else "No authenticator is configured: nobody can pass"
            )
            self.steps.append(Step("authentication", "no credential", False, tried))
            return "no_credential"
        self.message = self._failure_words(state)
        self.steps.append(
            Step(
                "authentication",
                f"{state.authenticator.describe()} refused the credential",
                False,
                [*tried[:-1], self.message],
                {
                    "authenticator": state.authenticator.describe(),
                    "failure": state.reason,
                    "detail": state.description or None,
                    "principal": state.principal,
                    "issuer": state.issuer,
                    "kid": state.kid,
                },
            )
        )
        return state.reason

    def _failure_words(self, state: Failed) -> str:
        authenticator = state.authenticator
        inner = authenticator.inner if isinstance(authenticator, _Recorder) else None
        if isinstance(inner, (BearerAuthenticator, IapAuthenticator)):
            token = _token_of(inner, self.environ)
            return _TokenWords(inner.login_service, token, self.now).words(state)
        service = getattr(inner, "login_service", None)
        if state.reason == "bad_credentials" and state.principal is not None:
            name = state.principal
            if (
                isinstance(service, HashLoginService)
                and name not in service.usernames()
            ):
                return f"Unknown user {name!r}: not in login service {service.name!r}"
            return f"Wrong password for user {name!r}"
        if state.reason == "malformed_credentials":
            return "Malformed Basic credentials (expected base64 of 'user:password')"
        return state.description or f"Credential refused ({state.reason})"

    def _identity_step(
        self, recorder: _Recorder | _Given, identity: UserIdentity, tried: list[str]
    ) -> Step:
        roles = ", ".join(sorted(identity.roles)) or "none"
        details = list(tried[:-1])
        data: dict[str, Any] = {
            "authenticator": recorder.describe(),
            "principal": identity.name,
            "auth_type": identity.auth_type,
            "issuer": identity.issuer,
            "kid": identity.kid,
            "roles": sorted(identity.roles),
        }
        if isinstance(recorder, _Given):
            summary = f"skipped (--user): {identity.name!r} with roles {roles}"
        else:
            summary = f"{recorder.describe()}: {identity.name!r} with roles {roles}"
            sources = _role_sources(recorder, identity)
            if sources:
                data["role_sources"] = sources
                details.extend(
                    f"role {role!r} from {', '.join(why)}"
                    for role, why in sorted(sources.items())
                )
            if identity.kid is not None or identity.claims:
                details.append(f"issuer {identity.issuer!r}, kid {identity.kid!r}")
                data["claims"] = dict(identity.claims)
        return Step("authentication", summary, True, details, data)

    def _authorize(self, identity: UserIdentity, info: RoleInfo, passed: bool) -> str:
        has = quoted(identity.roles) or "no roles"
        authorization = info.authorization
        if authorization is Authorization.ANY_USER:
            needed = "any authenticated user"
        elif authorization is Authorization.KNOWN_ROLE:
            known = self.handler.known_roles
            needed = f"a known role ({quoted(known) or 'none'})"
        else:
            roles = sorted(info.roles)
            needed = (
                f"role {roles[0]!r}"
                if len(roles) == 1
                else f"one of roles {quoted(roles)}"
            )
        summary = f"{needed} needed, {identity.name!r} has {has}"
        self.steps.append(
            Step(
                "authorization",
                summary,
                passed,
                data={"needed": needed, "has": sorted(identity.roles)},
            )
        )
        if passed:
            self.message = f"{identity.name!r} passes: {needed} needed"
            return "authorized"
        self.message = (
            f"{needed.capitalize()} needed, identity {identity.name!r} has {has}"
        )
        return "missing_role"


_ALLOW_REASONS = frozenset(
    {"allowed", "authorized", "no_constraint", "uncovered_allowed"}
)


def _spec_words(entry: SpecEntry) -> str:
    return f"{entry.spec.spec!r} ({spec_kind(entry.spec)})"


def _info_data(info: RoleInfo, words: str) -> dict[str, Any]:
    return {
        "authorization": authorization_name(info.authorization),
        "roles": sorted(info.roles),
        "secure": info.secure,
        "constraints": list(info.constraints),
        "summary": words,
    }


def _role_sources(
    recorder: _Recorder | _Given, identity: UserIdentity
) -> dict[str, list[str]]:
    service = getattr(getattr(recorder, "inner", None), "login_service", None)
    if not isinstance(service, TokenLoginService):
        return {}
    issuer = _issuer_of(service, identity.issuer)
    if issuer is None:
        return {}
    # A plain dict: the claim reader walks dicts only, not the read-only view.
    return issuer.role_sources(dict(identity.claims), identity.name)


def _issuer_of(service: TokenLoginService, iss: object) -> TokenIssuer | None:
    for issuer in service.issuers:
        if iss in issuer.issuers:
            return issuer
    return None


# -- Token failures in words -------------------------------------------------


class _TokenWords:
    """Turn a token failure into a sentence with the values at fault."""

    def __init__(
        self, service: TokenLoginService, token: str | None, now: float
    ) -> None:
        self.service = service
        self.now = now
        self.header, self.claims = peek(token or "")
        self.issuer = _issuer_of(service, self.claims.get("iss"))

    def words(self, state: Failed) -> str:
        """Return what failed, with the expected and the actual values."""
        handler = getattr(self, "_" + state.reason, None)
        text = handler() if handler is not None else None
        return text or state.description or f"Token refused ({state.reason})"

    def _leeway(self) -> int:
        return self.issuer.leeway if self.issuer is not None else 0

    def _time_claim(self, name: str) -> float | None:
        value = self.claims.get(name)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return None
        return float(value)

    def _token_expired(self) -> str | None:
        exp = self._time_claim("exp")
        if exp is None:
            return None
        return (
            f"Token expired: `exp` passed {duration(self.now - exp)} ago "
            f"({_iso(exp)}; leeway {self._leeway()} s)"
        )

    def _token_not_yet_valid(self) -> str | None:
        nbf = self._time_claim("nbf")
        if nbf is None:
            return None
        return (
            f"Token not yet valid: `nbf` is {duration(nbf - self.now)} ahead "
            f"({_iso(nbf)}; leeway {self._leeway()} s)"
        )

    def _token_issued_in_future(self) -> str | None:
        iat = self._time_claim("iat")
        if iat is None:
            return None
        return (
            f"Token issued in the future: `iat` is {duration(iat - self.now)} "
            f"ahead ({_iso(iat)}; leeway {self._leeway()} s)"
        )

    def _audience_mismatch(self) -> str | None:
        if self.issuer is None:
            return None
        return (
            f"Wrong audience: expected {quoted(self.issuer.audiences)}, token "
            f"has {json.dumps(self.claims.get('aud'))}"
        )

    def _issuer_unknown(self) -> str:
        known = ", ".join(
            f"{issuer.name} ({issuer.issuer})" for issuer in self.service.issuers
        )
        return (
            f"Unknown issuer: token `iss` is {json.dumps(self.claims.get('iss'))}; "
            f"configured: {known}"
        )

    def _bad_signature(self) -> str | None:
        if self.issuer is None:
            return None
        return (
            f"Bad signature: the token does not verify with key "
            f"{self.header.get('kid')!r} of issuer {self.issuer.name!r}"
        )

    def _unknown_kid(self) -> str | None:
        if self.issuer is None:
            return None
        return (
            f"Unknown key: {self.header.get('kid')!r} is not in the JWKS of "
            f"issuer {self.issuer.name!r}"
        )

    def _required_claim_mismatch(self) -> str | None:
        if self.issuer is None:
            return None
        for name, expected in self.issuer.required_claims.items():
            actual = self.claims.get(name, "missing")
            if actual != expected or type(actual) is not type(expected):
                return (
                    f"Claim {name!r} must be {json.dumps(expected)}, token has "
                    f"{json.dumps(actual)}"
                )
        return None

    def _algorithm_not_allowed(self) -> str | None:
        if self.issuer is None:
            return None
        return (
            f"Algorithm {self.header.get('alg')!r} not allowed for issuer "
            f"{self.issuer.name!r}: expected {quoted(self.issuer.algorithms)}"
        )


def peek(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Return the header and claims of a token, unverified, for display only.

    Anything that does not decode gives empty mappings.
    """
    parts = token.split(".")
    if len(parts) < 2:
        return {}, {}
    return _segment(parts[0]), _segment(parts[1])


def _segment(text: str) -> dict[str, Any]:
    try:
        data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        value = json.loads(data)
    except (binascii.Error, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def duration(seconds: float) -> str:
    """Return a duration in words: ``45 seconds``, ``4 minutes``, ``3 hours``."""
    value = abs(seconds)
    units: Sequence[tuple[str, float, float]] = (
        ("second", 1, 90),
        ("minute", 60, 90 * 60),
        ("hour", 3600, 36 * 3600),
        ("day", 86400, float("inf")),
    )
    unit, size = next((u, s) for u, s, below in units if value < below)
    count = round(value / size)
    return f"{count} {unit}{'' if count == 1 else 's'}"


def _iso(timestamp: float) -> str:
    moment = datetime.datetime.fromtimestamp(timestamp, datetime.timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


# -- The command -------------------------------------------------------------


def run_explain(path: str, query: Query, *, as_json: bool) -> int:
    """Load ``path``, explain ``query``, print it; return the exit code."""
    try:
        loaded = load(path)
    except ConfigError as exc:
        return config_error(exc, as_json=as_json)
    result = explain(loaded.config, query)
    if query.method != query.method.upper():
        result.warnings.append(
            f"Methods are case-sensitive: {query.method!r} is not "
            f"{query.method.upper()!r}"
        )
    if as_json:
        emit(json.dumps(result.as_dict(), indent=2, default=str))
    else:
        emit(result.text())
    return EXIT_FOUND if result.denied else EXIT_OK
