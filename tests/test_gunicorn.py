"""The Flask example under a real gunicorn, spoken to with raw request targets.

Test clients normalise a path before the application sees it; gunicorn
passes the target as sent (``RAW_URI``), which is what the handler must
refuse when it could be read two ways.

The example demands HTTPS wherever a credential is needed. Gunicorn here
speaks plain HTTP and trusts ``X-Forwarded-Proto`` from 127.0.0.1, and the
requests carry ``X-Forwarded-Proto: https``: exactly what Cloud Run's front
end, which terminates TLS, sends to the container, and what
``securityhandler.gunicorn`` trusts in the Dockerfile. That way is chosen
over gunicorn's own TLS because ``tests/test_demo.py`` already drives that
(the demo serves the same app with ``certfile``/``keyfile``), while nothing
else runs the deployed path against the example's transport rules.
"""

from __future__ import annotations

import base64
import http.client
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests._servers import free_port, wait_until_listening

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "flask_app"
ALICE = ("alice", "wonderland")
BOB = ("bob", "builder")


@pytest.fixture(scope="module")
def port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """Serve the Flask example with gunicorn (gthread) on a free loopback port."""
    port = free_port()
    log = tmp_path_factory.mktemp("gunicorn") / "error.log"
    command = [
        sys.executable,
        "-m",
        "gunicorn",
        "--worker-class",
        "gthread",
        "--threads",
        "2",
        "--bind",
        f"127.0.0.1:{port}",
        # Stand-in for Cloud Run's front end: the test client is that peer.
        "--forwarded-allow-ips",
        "127.0.0.1",
        "--error-logfile",
        str(log),
        "app:app",
    ]
    # From the example's directory, as the README runs it (less its TLS
    # options): `-m` then imports securityhandler from the installed package,
    # not the checkout.
    process = subprocess.Popen(command, cwd=EXAMPLE, stdin=subprocess.DEVNULL)
    try:
        wait_until_listening(process, port, log)
        yield port
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)


def _request(
    port: int,
    target: str,
    user: tuple[str, str] | None = None,
    *,
    proto: str | None = "https",
) -> tuple[int, bytes]:
    """Send ``GET target``, as relayed by a TLS front end unless ``proto`` is None."""
    headers = {}
    if proto is not None:
        headers["X-Forwarded-Proto"] = proto
    if user is not None:
        token = base64.b64encode(":".join(user).encode()).decode()
        headers["Authorization"] = f"Basic {token}"
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    # http.client sends the target verbatim: no normalisation, no re-encoding.
    connection.request("GET", target, headers=headers)
    response = connection.getresponse()
    body = response.read()
    connection.close()
    return response.status, body


@pytest.mark.parametrize(
    "target",
    [
        pytest.param("/api/%2e%2e/admin/", id="encoded-dot-segment"),
        pytest.param("/%2E%2E/admin/", id="encoded-dot-segment-upper"),
        pytest.param("/admin%2F", id="encoded-slash"),
        pytest.param("/api%2Forders", id="encoded-slash-mid"),
        pytest.param("//admin/", id="leading-double-slash"),
        pytest.param("/api//orders", id="inner-double-slash"),
        pytest.param("/a/..;/admin/", id="dot-dot-parameter"),
    ],
)
def test_ambiguous_target_refused(port: int, target: str) -> None:
    status, body = _request(port, target, ALICE)

    assert status == 400
    # The handler's plain answer, not gunicorn's own HTML error page.
    assert body == b"Bad Request\n"


@pytest.mark.parametrize(
    ("target", "user", "status"),
    [
        pytest.param("/", None, 200, id="public"),
        pytest.param("/api/orders", None, 401, id="no-credentials"),
        pytest.param("/admin/", BOB, 403, id="missing-role"),
        pytest.param("/admin/", ALICE, 200, id="admin-role"),
        pytest.param("/api/./orders", BOB, 200, id="dot-resolved"),
    ],
)
def test_plain_target_answers(
    port: int, target: str, user: tuple[str, str] | None, status: int
) -> None:
    answered, _ = _request(port, target, user)

    assert answered == status


@pytest.mark.parametrize(
    ("target", "user", "proto", "status"),
    [
        pytest.param("/api/orders", BOB, None, 403, id="credentials-no-header"),
        pytest.param("/api/orders", BOB, "http", 403, id="credentials-proto-http"),
        pytest.param("/api/orders", None, None, 403, id="no-credentials-no-header"),
        pytest.param("/admin/", ALICE, None, 403, id="admin-no-header"),
        pytest.param("/healthz", None, None, 200, id="public-no-header"),
        pytest.param("/", None, "http", 200, id="public-proto-http"),
    ],
)
def test_plain_http_needs_forwarded_https(
    port: int,
    target: str,
    user: tuple[str, str] | None,
    proto: str | None,
    status: int,
) -> None:
    answered, _ = _request(port, target, user, proto=proto)

    assert answered == status
