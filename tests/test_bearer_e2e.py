"""Bearer tokens through a real gunicorn process (gthread, four threads).

Each test starts a :class:`~securityhandler.testing.LocalIssuer` here, in the
test process, and gunicorn serving ``tests/_bearer_app.py``, whose key cache
fetches the issuer's JWKS over loopback. Fetches are counted where they
arrive, at the issuer. The gunicorn process keeps its own clock; the test
moves it forward through the app's ``/_test/clock`` endpoint instead of
waiting. Requests go out from a bounded thread pool; the only waiting is a
bounded poll for the server to listen.
"""

from __future__ import annotations

import http.client
import os
import secrets
import signal
import subprocess
import sys
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from securityhandler.testing import LocalIssuer
from tests._servers import free_port, wait_until_listening

ROOT = Path(__file__).resolve().parent.parent
AUDIENCE = "https://e2e.example.test"
# Served with the JWKS, so the worker keeps the keys 10 minutes.
JWKS_MAX_AGE = 600
# The worker's refetch cooldown: far longer than any test runs.
COOLDOWN = 300
THREADS = 4
CLIENTS = 8
REQUESTS = 64
FLOOD = 200


@dataclass
class Server:
    """The gunicorn process, its port and the issuer it trusts."""

    port: int
    issuer: LocalIssuer

    def request(
        self, method: str, target: str, token: str | None = None
    ) -> tuple[int, str | None]:
        """Send one request; return the status and ``WWW-Authenticate``."""
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            connection.request(method, target, headers=headers)
            response = connection.getresponse()
            response.read()
            return response.status, response.getheader("WWW-Authenticate")
        finally:
            connection.close()

    def get_all(self, tokens: Sequence[str]) -> list[tuple[int, str | None]]:
        """GET ``/api/orders`` once per token, ``CLIENTS`` requests at a time."""
        with ThreadPoolExecutor(max_workers=CLIENTS) as pool:
            return list(
                pool.map(
                    lambda token: self.request("GET", "/api/orders", token), tokens
                )
            )

    def advance_clock(self, seconds: int) -> None:
        """Move the worker's clock forward."""
        status, _ = self.request("POST", f"/_test/clock?advance={seconds}")
        assert status == 200


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    """Serve the bearer app with gunicorn, trusting a fresh local issuer."""
    with LocalIssuer(audience=AUDIENCE, lifetime=3600) as issuer:
        issuer.cache_control = f"max-age={JWKS_MAX_AGE}"
        port = free_port()
        log = tmp_path / "gunicorn.log"
        env = {
            # Gunicorn's own settings from the environment would change the
            # server under test.
            **{k: v for k, v in os.environ.items() if not k.startswith("GUNICORN")},
            "BEARER_ISSUER": issuer.issuer,
            "BEARER_JWKS_URI": issuer.jwks_uri,
            "BEARER_AUDIENCE": AUDIENCE,
            "BEARER_REFETCH_COOLDOWN": str(COOLDOWN),
        }
        command = [
            sys.executable,
            "-m",
            "gunicorn",
            "--worker-class",
            "gthread",
            "--workers",
            "1",
            "--threads",
            str(THREADS),
            "--bind",
            f"127.0.0.1:{port}",
            "--error-logfile",
            str(log),
            "tests._bearer_app:app",
        ]
        output = log.open("ab")
        process = subprocess.Popen(
            command,
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_until_listening(process, port, log)
            yield Server(port, issuer)
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=30)
            output.close()


def statuses(answers: Sequence[tuple[int, str | None]]) -> set[int]:
    return {status for status, _ in answers}


def test_e2e_concurrent_tokens_fetch_keys_once(server: Server) -> None:
    tokens = [server.issuer.mint(sub=f"caller-{n}") for n in range(REQUESTS)]

    answers = server.get_all(tokens)

    assert statuses(answers) == {200}
    # Four threads met an empty cache at once: one fetch, the others waited.
    assert server.issuer.jwks_fetches == 1


def test_e2e_issuer_down_served_from_cached_keys(server: Server) -> None:
    server.get_all([server.issuer.mint()])
    server.issuer.down()
    # Past the keys' lifetime, well within the grace for a last good set.
    server.advance_clock(JWKS_MAX_AGE + 1)
    tokens = [server.issuer.mint(sub=f"caller-{n}") for n in range(REQUESTS)]

    answers = server.get_all(tokens)

    assert statuses(answers) == {200}
    # One refresh was tried and failed; no retry within the cooldown.
    assert server.issuer.jwks_fetches == 2


def test_e2e_unknown_kid_flood_fetches_once(server: Server) -> None:
    server.get_all([server.issuer.mint()])
    server.advance_clock(COOLDOWN + 1)
    before = server.issuer.jwks_fetches
    flood = [
        server.issuer.mint(headers={"kid": secrets.token_urlsafe(16)})
        for _ in range(FLOOD)
    ]

    answers = server.get_all(flood)

    assert statuses(answers) == {401}
    assert {header for _, header in answers} == {
        'Bearer realm="e2e", error="invalid_token"'
    }
    # The first unknown kid refetched; the rest fell within the cooldown.
    assert server.issuer.jwks_fetches - before == 1
