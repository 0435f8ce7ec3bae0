"""Authenticators and the states they answer with.

An authenticator reads its own kind of credential from a request. A missing
or bad credential is a normal outcome, answered with a state, never an
exception: :class:`Unauthenticated` (no credential of this kind: the chain
goes on), :class:`Failed` (a credential was there and is not good: 401),
:class:`Succeeded` (an identity), or :class:`ResponseSent` (the
authenticator answers itself, a login redirect for example).
"""

from __future__ import annotations

import base64
import binascii
import re
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .identity import UserIdentity

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIEnvironment

    from .login import LoginService

Headers = list[tuple[str, str]]

#: Longest ``Authorization`` header read; a longer one is refused unread.
MAX_AUTHORIZATION_BYTES = 16384

_BASE64 = re.compile(r"[A-Za-z0-9+/]+={0,2}")


@dataclass(frozen=True)
class Succeeded:
    """The request carries a valid credential."""

    identity: UserIdentity
    authenticator: Authenticator = field(repr=False)


@dataclass(frozen=True)
class Unauthenticated:
    """The request carries no credential this authenticator reads."""


@dataclass(frozen=True)
class Failed:
    """The request carries a credential of this kind, and it is not good.

    :param reason: the audit reason code, such as ``bad_password``.
    :param error: the RFC 6750 error for the challenge (``invalid_token``,
        ``invalid_request``), if the scheme has one.
    :param principal: the name the credential claimed, for the audit record.
    :param issuer: the issuer the credential claimed, if any.
    :param kid: the key id the token named, if any.
    :param description: detail for the audit record and the CLI; never a
        secret and never sent to the client.
    """

    reason: str
    authenticator: Authenticator = field(repr=False)
    error: str | None = None
    principal: str | None = None
    issuer: str | None = None
    kid: str | None = None
    description: str = ""


@dataclass(frozen=True)
class ResponseSent:
    """The authenticator answers the request itself (a redirect, a form)."""

    status: str
    headers: Headers
    reason: str
    body: bytes = b""


AuthenticationState = Succeeded | Unauthenticated | Failed | ResponseSent

UNAUTHENTICATED = Unauthenticated()


class Authenticator(ABC):
    """Read one kind of credential from a request.

    :param realm: the realm named in challenges.
    """

    #: The ``AUTH_TYPE`` of identities this authenticator produces.
    auth_type: str = ""

    def __init__(self, realm: str = "securityhandler") -> None:
        self.realm = realm

    @abstractmethod
    def validate_request(self, environ: WSGIEnvironment) -> AuthenticationState:
        """Check the request's credential of this kind."""

    def challenge(self, error: str | None = None) -> str | None:
        """Return a ``WWW-Authenticate`` value, or ``None`` if this cannot challenge.

        :param error: the error code of a failed credential, if any.
        """
        return None

    def describe(self) -> str:
        """Return a one-line summary for the start-up log; never a secret."""
        return self.auth_type.lower() or type(self).__name__

    def forbidden_headers(self) -> Headers:
        """Return extra headers for a 403 to an identity this authenticated."""
        return []


def authorization_header(environ: WSGIEnvironment, scheme: str) -> str | None:
    """Return the credentials after ``scheme`` in ``Authorization``, or ``None``.

    The scheme is matched case-insensitively (RFC 9110 11.1). Returns ``""``
    when the header names the scheme but the rest is malformed.
    """
    header: str | None = environ.get("HTTP_AUTHORIZATION")
    if not header:
        return None
    name, sep, rest = header.partition(" ")
    if name.lower() != scheme:
        return None
    if not sep or not rest or rest != rest.strip(" \t") or " " in rest:
        return ""
    if len(header) > MAX_AUTHORIZATION_BYTES:
        return ""
    return rest


class BasicAuthenticator(Authenticator):
    """HTTP Basic authentication (RFC 7617) against a login service.

    The user-id is everything before the first colon; the password may hold
    colons. Credentials are strict base64 of UTF-8 text. Any malformed
    header is a 401, never an error.

    :param login_service: checks the user name and password.
    :param realm: the realm named in the challenge.
    """

    auth_type = "BASIC"

    def __init__(
        self, login_service: LoginService, realm: str = "securityhandler"
    ) -> None:
        super().__init__(realm)
        self.login_service = login_service

    def validate_request(self, environ: WSGIEnvironment) -> AuthenticationState:
        """Decode the Basic credentials and log the user in."""
        credentials = authorization_header(environ, "basic")
        if credentials is None:
            return UNAUTHENTICATED
        if (
            not credentials
            or not _BASE64.fullmatch(credentials)
            or len(credentials) % 4
        ):
            return Failed("malformed_credentials", self)
        try:
            decoded = base64.b64decode(credentials, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return Failed("malformed_credentials", self)
        username, colon, password = decoded.partition(":")
        if not colon or not username:
            return Failed("malformed_credentials", self)

        identity = self.login_service.login(username, password)
        if identity is None:
            return Failed("bad_credentials", self, principal=username)
        return Succeeded(identity, self)

    def describe(self) -> str:
        """Return ``basic (<login service>)`` for the start-up log."""
        return f"basic ({self.login_service.name})"

    def challenge(self, error: str | None = None) -> str:
        """Return the Basic challenge, announcing UTF-8 (RFC 7617 2.1)."""
        return f'Basic realm="{_quote(self.realm)}", charset="UTF-8"'


def _quote(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')
