"""Realistic requests and applications for the benchmark sections.

The environs look like what gunicorn hands a WSGI application behind Cloud
Run's front end: ``RAW_URI``, ``SCRIPT_NAME``, ``wsgi.url_scheme``, the
``wsgi.*`` keys and a dozen ``HTTP_`` headers. Every timed request gets a
fresh shallow copy, since the handler writes into the environ.
"""

from __future__ import annotations

import io
import sys
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

#: Where the benchmarked application is mounted (gunicorn's ``SCRIPT_NAME``).
SCRIPT_NAME = "/shop"

_HEADERS = {
    "HTTP_HOST": "orders-abc-uc.a.run.app",
    "HTTP_USER_AGENT": "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101",
    "HTTP_ACCEPT": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
    "HTTP_ACCEPT_ENCODING": "gzip, deflate, br",
    "HTTP_ACCEPT_LANGUAGE": "en-GB,en;q=0.7",
    "HTTP_CONNECTION": "keep-alive",
    "HTTP_CACHE_CONTROL": "no-cache",
    "HTTP_COOKIE": "theme=dark; consent=1",
    "HTTP_X_FORWARDED_FOR": "203.0.113.7",
    "HTTP_X_FORWARDED_PROTO": "https",
    "HTTP_TRACEPARENT": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    "HTTP_X_CLOUD_TRACE_CONTEXT": "4bf92f3577b34da6a3ce929d0e0e4736/1;o=1",
    "HTTP_SEC_FETCH_MODE": "navigate",
}


def make_environ(
    method: str,
    path: str,
    query: str = "",
    headers: Mapping[str, str] | None = None,
) -> WSGIEnvironment:
    """Build a PEP 3333 environ as gunicorn does for ``SCRIPT_NAME + path``.

    :param path: the path within the application, starting with ``/``.
    :param headers: extra ``HTTP_*`` keys, added to the usual dozen.
    """
    raw = SCRIPT_NAME + path + (f"?{query}" if query else "")
    environ: dict[str, Any] = {
        "REQUEST_METHOD": method,
        "SCRIPT_NAME": SCRIPT_NAME,
        "PATH_INFO": path,
        "QUERY_STRING": query,
        "RAW_URI": raw,
        "SERVER_NAME": "orders-abc-uc.a.run.app",
        "SERVER_PORT": "8080",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "SERVER_SOFTWARE": "gunicorn/23.0.0",
        "REMOTE_ADDR": "169.254.1.1",
        "REMOTE_PORT": "48302",
        "CONTENT_TYPE": "",
        "CONTENT_LENGTH": "",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "https",
        "wsgi.input": io.BytesIO(b""),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
        "wsgi.input_terminated": True,
        **_HEADERS,
    }
    environ.update(headers or {})
    return environ


def start_response(
    status: str, headers: list[tuple[str, str]], exc_info: Any = None
) -> Callable[[bytes], object]:
    """Accept the response start, as a server would, and do nothing."""
    return _write


def _write(data: bytes) -> None:
    """Discard data written through the legacy ``write`` callable."""


def hello_app(environ: WSGIEnvironment, start_response: StartResponse) -> list[bytes]:
    """Answer every request with a short text body: the bare application."""
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "13")])
    return [b"Hello, world!"]


def serve(app: WSGIApplication, environ: WSGIEnvironment) -> None:
    """Call ``app`` and drain its body the way a server does, closing it."""
    body: Iterable[bytes] = app(environ, start_response)
    try:
        for _chunk in body:
            pass
    finally:
        close = getattr(body, "close", None)
        if close is not None:
            close()


def serve_loop(app: WSGIApplication, environ: WSGIEnvironment) -> Callable[[int], None]:
    """Return a loop that serves ``n`` requests, each on a fresh environ copy."""

    def loop(n: int) -> None:
        for _ in range(n):
            serve(app, dict(environ))

    return loop


def copy_loop(environ: WSGIEnvironment) -> Callable[[int], None]:
    """Return a loop that only copies the environ: the baseline to subtract."""

    def loop(n: int) -> None:
        for _ in range(n):
            dict(environ)

    return loop
