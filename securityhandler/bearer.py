"""Token authenticators: RFC 6750 bearer tokens and Google IAP assertions.

:class:`BearerAuthenticator` reads ``Authorization: Bearer <token>`` and
verifies it in full. Tokens are read from that header only, never from a
query string or a form body (RFC 6750 2.2 and 2.3 are not supported: both
end up in logs).

Cloud Run
---------

A Cloud Run service whose invoker IAM check is on receives a caller's
ID token in ``X-Serverless-Authorization`` when the caller sends it there
(leaving ``Authorization`` free for the application). Cloud Run verifies
that token, checks the invoker role, then **removes the token's signature**
before passing the header on. The signature can therefore not be checked
here: what vouches for that header is Cloud Run's IAM check, and nothing
else. With ``trust_serverless_authorization=True`` (off by default) the
header is used when ``Authorization`` carries no bearer token: its claims
are checked exactly as for a signed token (issuer, audience, expiry,
required claims), its signature is not. Turn it on only for a service that
requires authentication at the Cloud Run level (``--no-allow-unauthenticated``):
on a public service anyone could send that header with made-up claims.
A :class:`~securityhandler.errors.SecurityWarning` at construction says so.
``Authorization`` is always verified in full, signature included.

IAP
---

:class:`IapAuthenticator` reads the ``x-goog-iap-jwt-assertion`` header that
Identity-Aware Proxy adds (and strips from clients), verifies it against
the ``iap`` issuer, and never challenges: a browser is sent to IAP's login
by IAP itself, not by the application.
"""

from __future__ import annotations

import re
import warnings
from typing import TYPE_CHECKING

from .authentication import (
    UNAUTHENTICATED,
    AuthenticationState,
    Authenticator,
    Failed,
    Headers,
    Succeeded,
    _quote,
)
from .errors import SecurityWarning
from .tokens import InvalidTokenError, TokenLoginService

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIEnvironment

#: The environ key of Identity-Aware Proxy's signed header.
IAP_HEADER = "HTTP_X_GOOG_IAP_JWT_ASSERTION"
#: The environ key of Cloud Run's signature-stripped caller token.
SERVERLESS_HEADER = "HTTP_X_SERVERLESS_AUTHORIZATION"

# RFC 6750 2.1: b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="
_B64TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]+=*")


class BearerAuthenticator(Authenticator):
    """RFC 6750 bearer tokens from ``Authorization``, checked by a token service.

    A request without a bearer token is not this authenticator's: the chain
    goes on, and the 401 carries ``Bearer realm="…"``. A malformed header
    (two tokens, stray spaces, nothing after the scheme) fails with
    ``invalid_request``; any problem with the token itself fails with
    ``invalid_token``, the specific reason going to the audit record only.

    :param login_service: verifies the tokens.
    :param realm: the realm named in challenges.
    :param trust_serverless_authorization: also read Cloud Run's
        ``X-Serverless-Authorization`` header, whose signature Cloud Run has
        removed after its own IAM check; see the module documentation.
    """

    auth_type = "BEARER"

    def __init__(
        self,
        login_service: TokenLoginService,
        realm: str = "securityhandler",
        *,
        trust_serverless_authorization: bool = False,
    ) -> None:
        super().__init__(realm)
        self.login_service = login_service
        self.trust_serverless_authorization = trust_serverless_authorization
        if trust_serverless_authorization:
            warnings.warn(
                "trust_serverless_authorization is on: tokens in "
                "X-Serverless-Authorization reach the app with their signature "
                "removed by Cloud Run, so only their claims are checked here. "
                "What protects them is Cloud Run's invoker IAM check: keep the "
                "service private (--no-allow-unauthenticated), or anyone can "
                "send that header with any claims.",
                SecurityWarning,
                stacklevel=2,
            )
        # A header longer than the largest token plus the scheme is refused
        # before it is looked at.
        self._max_header = login_service.max_token_bytes + len("Bearer ")

    def validate_request(self, environ: WSGIEnvironment) -> AuthenticationState:
        """Read the bearer token and verify it."""
        header: str | None = environ.get("HTTP_AUTHORIZATION")
        if header and _is_bearer(header):
            return self._check(header, signed=True)
        if self.trust_serverless_authorization:
            serverless: str | None = environ.get(SERVERLESS_HEADER)
            if serverless:
                return self._check(serverless, signed=False)
        return UNAUTHENTICATED

    def _check(self, header: str, *, signed: bool) -> AuthenticationState:
        if len(header) > self._max_header:
            return self._failed(
                "token_too_large",
                "invalid_token",
                f"Authorization over {self._max_header} bytes",
            )
        service = self.login_service
        try:
            if signed and header.startswith("Bearer "):
                # A token seen before skips the grammar check: it passed it.
                identity = service.cached(header[7:], auth_type=self.auth_type)
                if identity is not None:
                    return Succeeded(identity, self)
            token = _bearer_token(header)
            if token is None:
                return self._failed(
                    "malformed_authorization",
                    "invalid_request",
                    "Expected 'Bearer' followed by one space and one token",
                )
            if signed:
                identity = service.verify(token, auth_type=self.auth_type)
            else:
                identity = service.verify_unsigned(token, auth_type=self.auth_type)
        except InvalidTokenError as exc:
            return token_failure(exc, self, "invalid_token")
        return Succeeded(identity, self)

    def _failed(self, reason: str, error: str, description: str) -> Failed:
        return Failed(reason, self, error=error, description=description)

    def challenge(self, error: str | None = None) -> str:
        """Return ``Bearer realm="R"``, plus ``error="…"`` for a failed token."""
        value = f'Bearer realm="{_quote(self.realm)}"'
        if error:
            value += f', error="{error}"'
        return value

    def forbidden_headers(self) -> Headers:
        """Return the RFC 6750 3.1 ``insufficient_scope`` challenge for a 403."""
        return [("WWW-Authenticate", self.challenge("insufficient_scope"))]


class IapAuthenticator(Authenticator):
    """Google Identity-Aware Proxy's ``x-goog-iap-jwt-assertion`` header.

    The header is verified in full (ES256, IAP's keys, the audience of the
    backend service, App Engine app or Cloud Run service). Identities get
    ``AUTH_TYPE`` ``IAP``. There is no challenge: IAP sends users to its
    own login before the request ever reaches the application.

    :param login_service: verifies the assertions (an ``iap`` preset issuer).
    :param realm: unused in answers; kept for a uniform signature.
    """

    auth_type = "IAP"

    def __init__(
        self, login_service: TokenLoginService, realm: str = "securityhandler"
    ) -> None:
        super().__init__(realm)
        self.login_service = login_service

    def validate_request(self, environ: WSGIEnvironment) -> AuthenticationState:
        """Verify the IAP assertion header, if there is one."""
        assertion: str | None = environ.get(IAP_HEADER)
        if not assertion:
            return UNAUTHENTICATED
        try:
            identity = self.login_service.verify(assertion, auth_type=self.auth_type)
        except InvalidTokenError as exc:
            return token_failure(exc, self)
        return Succeeded(identity, self)


def token_failure(
    exc: InvalidTokenError, authenticator: Authenticator, error: str | None = None
) -> Failed:
    """Return the state of a refused token: the audit fields, never the token.

    :param error: the RFC 6750 error for the challenge, if the scheme has one.
    """
    return Failed(
        exc.reason,
        authenticator,
        error=error,
        principal=exc.principal,
        issuer=exc.issuer,
        kid=exc.kid,
        description=exc.description,
    )


def _is_bearer(header: str) -> bool:
    """Tell whether the header names the Bearer scheme (case-insensitive)."""
    return header[:6].lower() == "bearer" and header[6:7] in ("", " ", "\t")


def _bearer_token(header: str) -> str | None:
    """Return the token of ``Bearer <token>``, or ``None`` if malformed."""
    scheme, sep, token = header.partition(" ")
    if scheme.lower() != "bearer" or not sep or not _B64TOKEN.fullmatch(token):
        return None
    return token
