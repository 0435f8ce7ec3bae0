"""The WSGI middleware: Jetty's ``ConstraintSecurityHandler`` pipeline."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import quote

from werkzeug.middleware.proxy_fix import ProxyFix

from ._target import (
    AmbiguousTargetError,
    Target,
    canonical_target,
    server_script_name,
)
from .audit import audit
from .audit import log as audit_log
from .authentication import (
    Authenticator,
    Failed,
    Headers,
    ResponseSent,
    Succeeded,
)
from .constraints import (
    Authorization,
    ConstraintMapping,
    ConstraintMappings,
    RoleInfo,
    SpecEntry,
)
from .errors import KeysUnavailableError
from .identity import (
    DECISION_KEY,
    DEFERRED_KEY,
    IdentityService,
    UserIdentity,
)

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

log = logging.getLogger(__name__)

_ROUTE_CACHE_SIZE = 4096
# A host name or an IP literal: nothing that could bend the redirect elsewhere.
_HOST = re.compile(r"[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\]")


@dataclass(frozen=True)
class Decision:
    """What the handler decided for a request, and why.

    Stored in ``environ["securityhandler.decision"]`` for the application.

    :param outcome: ``allow`` or ``deny``.
    :param reason: the reason code (``no_constraint``, ``allowed``,
        ``authorized``, ``forbidden``, ``uncovered_method`` ...).
    :param spec: the path spec that matched, ``None`` if none did.
    :param constraints: the names of the constraints that were combined.
    :param method: the request method.
    """

    outcome: str
    reason: str
    spec: str | None = None
    constraints: tuple[str, ...] = ()
    method: str = ""


@dataclass(frozen=True)
class ProxyConfig:
    """How many proxy hops to trust for each ``X-Forwarded-*`` header.

    Zero (the default) trusts none: a client could forge them. Cloud Run's
    front end sets ``X-Forwarded-For`` and ``X-Forwarded-Proto``: one hop.
    """

    x_for: int = 0
    x_proto: int = 0
    x_host: int = 0
    x_port: int = 0
    x_prefix: int = 0

    @property
    def trusts_any(self) -> bool:
        """Tell whether any forwarded header is trusted."""
        return any((self.x_for, self.x_proto, self.x_host, self.x_port, self.x_prefix))


@dataclass(frozen=True)
class _Answer:
    status: str
    headers: Headers
    body: bytes


def _plain(status: str, headers: Iterable[tuple[str, str]] = ()) -> _Answer:
    body = status.split(" ", 1)[1].encode() + b"\n"
    return _Answer(
        status,
        [
            ("Content-Type", "text/plain; charset=utf-8"),
            ("Content-Length", str(len(body))),
            ("Cache-Control", "no-store"),
            *headers,
        ],
        body,
    )


_BAD_REQUEST = _plain("400 Bad Request")
_FORBIDDEN = _plain("403 Forbidden")
_SERVER_ERROR = _plain("500 Internal Server Error")


class _DeferredAuthentication:
    """Authenticate only if the application asks who the user is."""

    __slots__ = ("handler",)

    def __init__(self, handler: ConstraintSecurityHandler) -> None:
        self.handler = handler

    def authenticate(self, environ: WSGIEnvironment) -> UserIdentity | None:
        try:
            state = self.handler.authenticate(environ)
        except KeysUnavailableError as exc:
            log.warning("Deferred authentication skipped: %s", exc.description)
            return None
        if isinstance(state, Succeeded):
            return state.identity
        if isinstance(state, Failed):
            audit(environ, "unauthenticated", state.reason, **_failure_fields(state))
        return None


class ConstraintSecurityHandler:
    """Guard a WSGI application with path and method constraints.

    :param app: the application to protect.
    :param mappings: the constraint mappings, in any order.
    :param authenticators: tried in order; the first that finds its own kind
        of credential decides.
    :param realm: the realm named in challenges.
    :param known_roles: what ``known-role`` accepts; default: every role
        named by a constraint.
    :param deny_uncovered_methods: answer 403 to a method that no constraint
        of the matching path spec covers (default ``True``).
    :param enforce: ``False`` decides and logs but always calls the app.
    :param secure_port: redirect to HTTPS on this port when a constraint
        demands secure transport; ``0`` answers 403 instead.
    :param proxy: forwarded headers to trust; none by default, since a
        client can forge them when no proxy strips them.
    :param identity_service: where the identity is put in the environ.
    """

    def __init__(
        self,
        app: WSGIApplication,
        mappings: Iterable[ConstraintMapping] | ConstraintMappings = (),
        authenticators: Sequence[Authenticator] = (),
        *,
        realm: str = "securityhandler",
        known_roles: Iterable[str] | None = None,
        deny_uncovered_methods: bool = True,
        enforce: bool = True,
        secure_port: int = 0,
        proxy: ProxyConfig | None = None,
        identity_service: IdentityService | None = None,
    ) -> None:
        self.app = app
        if not isinstance(mappings, ConstraintMappings):
            mappings = ConstraintMappings(mappings)
        self.mappings = mappings
        self.authenticators = tuple(authenticators)
        self.realm = realm
        self.known_roles = frozenset(
            mappings.roles() if known_roles is None else known_roles
        )
        self.deny_uncovered_methods = deny_uncovered_methods
        self.enforce = enforce
        self.secure_port = secure_port
        self.proxy = proxy or ProxyConfig()
        self.identity_service = identity_service or IdentityService()
        self._deferred = _DeferredAuthentication(self)
        self._routes: dict[
            tuple[str, str, str | None], tuple[Target, str, SpecEntry | None]
        ] = {}
        self._decisions: dict[tuple[str, str, str | None, str], Decision] = {}
        self._entry: WSGIApplication = self._handle
        if self.proxy.trusts_any:
            self._entry = ProxyFix(
                self._handle,
                x_for=self.proxy.x_for,
                x_proto=self.proxy.x_proto,
                x_host=self.proxy.x_host,
                x_port=self.proxy.x_port,
                x_prefix=self.proxy.x_prefix,
            )
        self._log_summary()

    def _log_summary(self) -> None:
        """Log what this handler enforces, once, at start-up."""
        log.info(
            "securityhandler %s: %d constraint mappings over %d path specs, "
            "authenticators [%s], uncovered methods %s, secure port %s",
            "enforcing" if self.enforce else "REPORT-ONLY (nothing is blocked)",
            len(self.mappings.mappings),
            len(self.mappings.entries()),
            ", ".join(a.describe() for a in self.authenticators),
            "denied" if self.deny_uncovered_methods else "allowed",
            self.secure_port or "none",
        )

    def __call__(
        self, environ: WSGIEnvironment, start_response: StartResponse
    ) -> Iterable[bytes]:
        return self._entry(environ, start_response)

    def _handle(
        self, environ: WSGIEnvironment, start_response: StartResponse
    ) -> Iterable[bytes]:
        try:
            answer = self.check_request(environ)
        except KeysUnavailableError as exc:
            # No keys to decide with: report-only mode still lets it pass.
            log.error("No verification keys: %s", exc.description)
            audit(environ, self._denial, exc.error)
            answer = _plain(
                "503 Service Unavailable", [("Retry-After", str(exc.retry_after))]
            )
        except Exception:
            # A bug or a config broken at runtime: fail closed, in every mode.
            log.exception("Security check failed; answering 500")
            audit(environ, "deny", "engine_failure")
            start_response(_SERVER_ERROR.status, _SERVER_ERROR.headers)
            return [_SERVER_ERROR.body]
        if answer is None or not self.enforce:
            return self.app(environ, start_response)
        start_response(answer.status, answer.headers)
        return [answer.body]

    def find_entry(self, path: str) -> SpecEntry | None:
        """Return the compiled entry of the best path spec for a canonical path."""
        return self.mappings.find(path)

    def _route(self, environ: WSGIEnvironment) -> tuple[Target, SpecEntry | None]:
        """Canonicalise the target and find its spec, remembering both per raw target.

        The key holds every input :func:`canonical_target` reads, so a hit
        replays its result, ``PATH_INFO`` included. Refusals are not kept.
        The cache is bounded and simply emptied when full.
        """
        raw = environ.get("RAW_URI") or environ.get("REQUEST_URI")
        if not raw:
            target = canonical_target(environ)
            return target, self.mappings.find(target.path)
        key = (server_script_name(environ), raw, environ.get("QUERY_STRING"))
        cached = self._routes.get(key)
        if cached is not None:
            target, path_info, entry = cached
            if environ.get("PATH_INFO") != path_info:
                environ["PATH_INFO"] = path_info
            return target, entry
        target = canonical_target(environ)
        entry = self.mappings.find(target.path)
        if len(self._routes) >= _ROUTE_CACHE_SIZE:
            self._routes.clear()
        self._routes[key] = (target, environ["PATH_INFO"], entry)
        return target, entry

    def check_request(self, environ: WSGIEnvironment) -> _Answer | None:
        """Run steps 1 to 8 of the pipeline; return the answer, or ``None`` to pass.

        Credentials are not read on paths that need no authentication; the
        identity is then found lazily by :func:`get_identity`.
        """
        # 1. The request target: one reading only, or 400.
        try:
            target, entry = self._route(environ)
        except AmbiguousTargetError as exc:
            audit(environ, self._denial, "ambiguous_target", detail=exc.reason)
            return _BAD_REQUEST

        # 2. The constraint: best path spec, then the method.
        method = environ["REQUEST_METHOD"]
        if entry is None:
            environ[DECISION_KEY] = self._decision(
                "allow", "no_constraint", None, method
            )
            environ[DEFERRED_KEY] = self._deferred
            return None
        info = entry.role_info(method)
        spec = entry.spec.spec

        # 3. Forbidden, or a method no constraint covers.
        if info.authorization is Authorization.FORBIDDEN:
            return self._deny(environ, _FORBIDDEN, "forbidden", spec, info, method)
        if info.uncovered:
            if self.deny_uncovered_methods:
                return self._deny(
                    environ, _FORBIDDEN, "uncovered_method", spec, info, method
                )
            environ[DECISION_KEY] = self._decision(
                "allow", "uncovered_allowed", spec, method
            )
            environ[DEFERRED_KEY] = self._deferred
            return None

        # 4. Transport.
        if info.secure and environ.get("wsgi.url_scheme") != "https":
            return self._deny(
                environ,
                self._secure_redirect(environ, method, target.raw_path, target.query),
                "insecure_transport",
                spec,
                info,
                method,
            )

        # 5. Allowed: no credential is read unless the app asks (deferred).
        if info.authorization is Authorization.ALLOWED:
            environ[DECISION_KEY] = self._decision(
                "allow", "allowed", spec, method, info.constraints
            )
            environ[DEFERRED_KEY] = self._deferred
            return None

        # 6. Authenticate.
        state = self.authenticate(environ)
        if isinstance(state, ResponseSent):
            answer = _Answer(state.status, state.headers, state.body)
            return self._deny(environ, answer, state.reason, spec, info, method)
        if state is None:
            return self._deny(
                environ, self._unauthorized(None), "no_credential", spec, info, method
            )
        if isinstance(state, Failed):
            return self._deny(
                environ,
                self._unauthorized(state),
                state.reason,
                spec,
                info,
                method,
                failure=state,
            )

        # 7. Authorize.
        identity = state.identity
        if not self._authorized(identity, info):
            answer = _plain("403 Forbidden", state.authenticator.forbidden_headers())
            return self._deny(
                environ, answer, "missing_role", spec, info, method, identity
            )

        # 8. Identity in the environ; the app is called by the caller.
        environ[DECISION_KEY] = self._decision(
            "allow", "authorized", spec, method, info.constraints
        )
        return None

    def authenticate(
        self, environ: WSGIEnvironment
    ) -> Succeeded | Failed | ResponseSent | None:
        """Run the authenticator chain; associate and audit an identity.

        A failure is not audited here: the caller writes one record for it,
        a denial or (deferred) an ``unauthenticated`` record.

        :return: the first state that is not "no credential", or ``None``
            when no authenticator found its kind of credential.
        """
        for authenticator in self.authenticators:
            state = authenticator.validate_request(environ)
            if isinstance(state, Succeeded):
                identity = state.identity
                self.identity_service.associate(environ, identity)
                audit(
                    environ,
                    "authenticated",
                    "credential_valid",
                    **_identity_fields(identity),
                )
                return state
            if isinstance(state, (Failed, ResponseSent)):
                return state
        return None

    def _authorized(self, identity: UserIdentity, info: RoleInfo) -> bool:
        authorization = info.authorization
        if authorization is Authorization.ANY_USER:
            return True
        if authorization is Authorization.KNOWN_ROLE:
            return not identity.roles.isdisjoint(self.known_roles)
        return not identity.roles.isdisjoint(info.roles)

    def _unauthorized(self, state: Failed | None) -> _Answer:
        if not self.authenticators:
            # Nobody can satisfy the constraint: no challenge to offer.
            return _FORBIDDEN
        failing = state.authenticator if state is not None else None
        headers: Headers = []
        for authenticator in self.authenticators:
            error = state.error if authenticator is failing and state else None
            value = authenticator.challenge(error)
            if value is not None:
                headers.append(("WWW-Authenticate", value))
        return _plain("401 Unauthorized", headers)

    def _secure_redirect(
        self, environ: WSGIEnvironment, method: str, raw_path: str, query: str
    ) -> _Answer:
        if not self.secure_port or method not in ("GET", "HEAD"):
            return _FORBIDDEN
        host = _strip_port(environ.get("HTTP_HOST") or environ.get("SERVER_NAME", ""))
        if not _HOST.fullmatch(host):
            return _BAD_REQUEST
        port = "" if self.secure_port == 443 else f":{self.secure_port}"
        location = f"https://{host}{port}{_external_path(environ, raw_path)}"
        if query:
            location += "?" + query
        return _Answer(
            "302 Found",
            [
                ("Location", location),
                ("Content-Length", "0"),
                ("Cache-Control", "no-store"),
            ],
            b"",
        )

    def _decision(
        self,
        outcome: str,
        reason: str,
        spec: str | None,
        method: str,
        names: tuple[str, ...] = (),
    ) -> Decision:
        """Return the (shared, immutable) decision for these values."""
        key = (outcome, reason, spec, method)
        decision = self._decisions.get(key)
        if decision is None:
            decision = Decision(outcome, reason, spec, names, method)
            if len(self._decisions) >= _ROUTE_CACHE_SIZE:
                self._decisions.clear()
            self._decisions[key] = decision
        return decision

    @property
    def _denial(self) -> str:
        """Return the audit decision of a denial; report-only lets it pass."""
        return "deny" if self.enforce else "would_deny"

    def _deny(
        self,
        environ: WSGIEnvironment,
        answer: _Answer,
        reason: str,
        spec: str,
        info: RoleInfo,
        method: str,
        identity: UserIdentity | None = None,
        failure: Failed | None = None,
    ) -> _Answer:
        environ[DECISION_KEY] = self._decision(
            "deny", reason, spec, method, info.constraints
        )
        if not audit_log.isEnabledFor(logging.INFO):
            return answer
        if identity is not None:
            fields = _identity_fields(identity)
        elif failure is not None:
            fields = _failure_fields(failure)
        else:
            fields = {}
        audit(
            environ,
            self._denial,
            reason,
            status=int(answer.status[:3]),
            constraint=",".join(info.constraints) or None,
            spec=spec,
            **fields,
        )
        return answer


def _identity_fields(identity: UserIdentity) -> dict[str, str | None]:
    """Return the audit fields of an authenticated identity."""
    return {
        "principal": identity.name,
        "auth_type": identity.auth_type,
        "issuer": identity.issuer,
        "kid": identity.kid,
    }


def _failure_fields(state: Failed) -> dict[str, str | None]:
    """Return the audit fields of a failed credential: names and ids only."""
    return {
        "principal": state.principal,
        "issuer": state.issuer,
        "kid": state.kid,
        "auth_type": state.authenticator.auth_type,
        "detail": state.description or None,
    }


def _external_path(environ: WSGIEnvironment, raw_path: str) -> str:
    """Return the raw path as the client sent it, before any proxy.

    Behind a trusted ``X-Forwarded-Prefix``, ProxyFix has replaced the
    server's ``SCRIPT_NAME`` with the prefix the client used.
    """
    prefix = environ.get("SCRIPT_NAME", "")
    server_prefix = server_script_name(environ)
    if prefix == server_prefix or not raw_path.startswith(server_prefix):
        return raw_path
    return quote(prefix.encode("latin-1")) + raw_path[len(server_prefix) :]


def _strip_port(host: str) -> str:
    if host.startswith("["):
        end = host.find("]")
        return host[: end + 1] if end != -1 else host
    return host.partition(":")[0]
