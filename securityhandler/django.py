"""Django helpers: ``request.identity`` and ``REMOTE_USER``.

Wrap the WSGI application in ``wsgi.py``::

    application = securityhandler.secure(get_wsgi_application(), "security.yaml")

and add the middleware next to Django's own remote-user support::

    MIDDLEWARE = [
        "django.contrib.sessions.middleware.SessionMiddleware",
        "django.contrib.auth.middleware.AuthenticationMiddleware",
        "django.contrib.auth.middleware.RemoteUserMiddleware",
        "securityhandler.django.IdentityMiddleware",
    ]
    AUTHENTICATION_BACKENDS = ["django.contrib.auth.backends.RemoteUserBackend"]

The handler sets ``REMOTE_USER`` in the environ, which Django copies into
``request.META``, so ``RemoteUserMiddleware`` logs the user in unchanged
and ``request.user`` works as usual on protected paths. On paths the
constraints leave open no credential is checked up front: there
``REMOTE_USER`` is unset when ``RemoteUserMiddleware`` runs, and
``request.identity`` checks the credential when a view first reads it.

This module imports Django; ``import securityhandler`` does not.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING

from django.utils.functional import SimpleLazyObject

from .identity import get_identity

if TYPE_CHECKING:
    from django.http import HttpRequest, HttpResponseBase


class IdentityMiddleware:
    """Set ``request.identity``: the request's identity, found lazily.

    ``request.identity`` proxies a
    :class:`~securityhandler.identity.UserIdentity` or ``None``. Truth-test
    it (``if request.identity:``); the proxy itself is never ``None``, so
    call ``securityhandler.get_identity(request.META)`` where the plain
    value is needed. Its position among the middleware does not matter: it
    reads only what the handler put in the environ.

    :param get_response: the next middleware or the view.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        """Attach the lazy identity, then pass the request on."""
        request.identity = SimpleLazyObject(  # type: ignore[attr-defined]
            partial(get_identity, request.META)
        )
        return self.get_response(request)
