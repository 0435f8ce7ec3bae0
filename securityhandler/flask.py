"""Flask helpers: who the current request is.

Wrap the app once, then read the identity in any view::

    import securityhandler
    from securityhandler.flask import current_identity

    app.wsgi_app = securityhandler.secure(app.wsgi_app, "security.yaml")

    @app.get("/api/orders")
    def orders():
        return {"user": current_identity.name if current_identity else None}

Constraints decide who reaches a view; this module only reports the
identity. There are no role decorators here on purpose: a rule in a
decorator and a rule in ``security.yaml`` could disagree, and the YAML is
the one the handler enforces and the CLI explains.

This module imports Flask; ``import securityhandler`` does not.
"""

from __future__ import annotations

from flask import request
from werkzeug.local import LocalProxy

from .identity import UserIdentity, get_identity


def get_current_identity() -> UserIdentity | None:
    """Return the identity of the current Flask request, or ``None``.

    On a path that the constraints leave open, the credential the request
    carries is checked now, on first use (deferred authentication); ``None``
    means there is no credential or it is not valid.

    :raises RuntimeError: outside a request context.
    """
    return get_identity(request.environ)


#: The identity of the current request, as a proxy: ``current_identity.name``,
#: ``current_identity.roles``. Truth-test it (``if current_identity:``); a
#: proxy is never ``None`` itself, so use :func:`get_current_identity` where
#: the plain value is needed. Falsy outside a request context. Typed as the
#: value it stands for, as Flask types ``request``.
current_identity: UserIdentity | None = LocalProxy(  # type: ignore[assignment]
    get_current_identity
)
