"""The Flask example: a small orders API guarded by ``security.yaml``.

The views hold no security code: ``security.yaml`` decides who reaches each
one, and the views only report who called. Every path that needs a password
demands HTTPS, so run it from this directory with a certificate (README.md,
"The examples under gunicorn" makes one)::

    gunicorn -k gthread -b 127.0.0.1:8000 \
        --certfile cert.pem --keyfile key.pem app:app

or behind a front end that terminates TLS and sets ``X-Forwarded-Proto``, as
Cloud Run's does. ``securityhandler demo`` serves this app over HTTPS with a
certificate it makes at start.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flask import Flask, request

import securityhandler
from securityhandler.flask import current_identity

HERE = Path(__file__).resolve().parent

app = Flask(__name__)
app.wsgi_app = securityhandler.secure(  # type: ignore[method-assign]
    app.wsgi_app, HERE / "security.yaml"
)

ORDERS = ({"id": 1, "item": "espresso beans", "quantity": 2},)


def caller() -> dict[str, Any]:
    """Describe the caller from the identity the handler established."""
    if not current_identity:
        return {"user": None, "roles": [], "auth_type": None}
    return {
        "user": current_identity.name,
        "roles": sorted(current_identity.roles),
        "auth_type": current_identity.auth_type,
    }


@app.get("/")
def index() -> dict[str, Any]:
    """Answer anyone; name the caller if the request carries credentials."""
    return {"page": "home", "caller": caller()}


@app.get("/healthz")
def healthz() -> dict[str, Any]:
    """Answer anyone: the health check of a load balancer."""
    return {"status": "ok", "caller": caller()}


@app.get("/api/orders")
def list_orders() -> dict[str, Any]:
    """List the orders: any signed-in user."""
    return {"orders": list(ORDERS), "caller": caller()}


@app.post("/api/orders")
def create_order() -> tuple[dict[str, Any], int]:
    """Accept an order: writers only. The example stores nothing.

    A JSON body is required (415 otherwise): a cross-site HTML form cannot
    send one, which keeps browsers' automatic Basic credentials from being
    used to post orders from another site.
    """
    body = request.get_json()
    item = body.get("item") if isinstance(body, dict) else None
    order = {"id": len(ORDERS) + 1, "item": str(item), "quantity": 1}
    return {"order": order, "caller": caller()}, 201


@app.get("/admin/")
def admin() -> dict[str, Any]:
    """Show the admin page: role ``admin`` only."""
    return {"page": "admin", "caller": caller()}
