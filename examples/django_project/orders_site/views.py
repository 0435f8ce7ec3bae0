"""The example's views. They hold no security code: they report the caller."""

from __future__ import annotations

import json
from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods, require_safe

ORDERS = ({"id": 1, "item": "espresso beans", "quantity": 2},)


def caller(request: HttpRequest) -> dict[str, Any]:
    """Describe the caller: the handler's identity and Django's user."""
    identity = request.identity  # type: ignore[attr-defined]
    user = request.user.get_username() if request.user.is_authenticated else None
    if not identity:
        return {"user": None, "roles": [], "django_user": user}
    return {
        "user": identity.name,
        "roles": sorted(identity.roles),
        "django_user": user,
    }


@require_safe
def index(request: HttpRequest) -> HttpResponse:
    """Answer anyone; name the caller if the request carries credentials."""
    return JsonResponse({"page": "home", "caller": caller(request)})


@require_safe
def healthz(request: HttpRequest) -> HttpResponse:
    """Answer anyone: the health check of a load balancer."""
    return JsonResponse({"status": "ok", "caller": caller(request)})


# No CSRF token for this API view: the JSON body it requires guards it
# instead, since a cross-site HTML form cannot send one.
@csrf_exempt
@require_http_methods(["GET", "HEAD", "POST"])
def orders(request: HttpRequest) -> HttpResponse:
    """List orders (any signed-in user) or accept one (writers only)."""
    if request.method != "POST":
        return JsonResponse({"orders": list(ORDERS), "caller": caller(request)})
    if request.content_type != "application/json":
        return JsonResponse({"error": "expected application/json"}, status=415)
    try:
        body = json.loads(request.body)
    except ValueError:
        return JsonResponse({"error": "invalid JSON"}, status=400)
    item = body.get("item") if isinstance(body, dict) else None
    order = {"id": len(ORDERS) + 1, "item": str(item), "quantity": 1}
    return JsonResponse({"order": order, "caller": caller(request)}, status=201)


@require_safe
def admin(request: HttpRequest) -> HttpResponse:
    """Show the admin page: role ``admin`` only."""
    return JsonResponse({"page": "admin", "caller": caller(request)})
