"""Who the request is: the identity and where it lives in the WSGI environ."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIEnvironment

#: environ key of the :class:`UserIdentity` of an authenticated request.
IDENTITY_KEY = "securityhandler.identity"
#: environ key of the :class:`~securityhandler.handler.Decision`.
DECISION_KEY = "securityhandler.decision"
#: environ key of the deferred authentication on paths that need none.
DEFERRED_KEY = "securityhandler.deferred"

_EMPTY: Mapping[str, Any] = MappingProxyType({})


@dataclass(frozen=True)
class UserIdentity:
    """An authenticated principal.

    :param name: the principal name, what ``REMOTE_USER`` holds.
    :param roles: the roles the constraints check.
    :param auth_type: ``BASIC``, ``BEARER``, ``FORM``, ``OPENID`` or ``IAP``.
    :param issuer: the token issuer or login service that vouched for it.
    :param claims: the verified token claims, empty for password logins.
    :param kid: the key id that verified the token, if any.
    """

    name: str
    roles: frozenset[str] = frozenset()
    auth_type: str = "BASIC"
    issuer: str | None = None
    claims: Mapping[str, Any] = field(
        default_factory=lambda: _EMPTY, repr=False, compare=False
    )
    kid: str | None = None

    def has_role(self, role: str) -> bool:
        """Tell whether the identity holds ``role``."""
        return role in self.roles


class IdentityService:
    """Put an identity where WSGI applications, Flask and Django look for it.

    Sets ``REMOTE_USER`` (the principal name), ``AUTH_TYPE`` and
    ``securityhandler.identity``. Subclass it to map roles differently or to
    run the request as another principal.
    """

    def associate(self, environ: WSGIEnvironment, identity: UserIdentity) -> None:
        """Attach ``identity`` to the request."""
        environ[IDENTITY_KEY] = identity
        environ["REMOTE_USER"] = identity.name.encode("utf-8").decode("latin-1")
        environ["AUTH_TYPE"] = identity.auth_type


def get_identity(environ: WSGIEnvironment) -> UserIdentity | None:
    """Return the identity of the request, authenticating lazily if needed.

    On a path whose constraint needs no authentication the credential is not
    checked up front; the first call here checks it. Returns ``None`` when
    the request carries no valid credential.
    """
    identity = environ.get(IDENTITY_KEY)
    if identity is not None:
        return identity  # type: ignore[no-any-return]
    deferred = environ.get(DEFERRED_KEY)
    if deferred is None:
        return None
    environ.pop(DEFERRED_KEY)
    return deferred.authenticate(environ)  # type: ignore[no-any-return]
