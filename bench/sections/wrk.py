"""A hello-world Flask app under gunicorn, measured with ``wrk`` over loopback.

Six servers run side by side, each ``gunicorn -k gthread --workers 1
--threads 4`` on its own loopback port, serving ``bench/peers/hello.py`` in
one mode: no security; securityhandler's bearer constraint (as shipped, and
with its verified-token cache off); Authlib's ``ResourceProtector`` with its
joserfc-based RFC 9068 validator; flask-jwt-extended; a PyJWT middleware.
Each is sent the same RS256 access token, by ``wrk -t1 -c4`` (one client
thread, four keep-alive connections), in short runs interleaved across the
servers (the order rotating each round) after a warm-up run each; the
figure is the median run in requests per second. Before any timing every
server must answer the token 200, a token without the scope 403 and no
token 401, so that no one is measured answering errors.

The peers verify the token's signature on every request; securityhandler
as shipped does so once and then serves repeats from its verified-token
cache, which is what the ``cache off`` row isolates.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

from harness import Row, Settings, Stats, ratio
from peers import material
from peers.hello import MODES

TITLE = "hello-world Flask under gunicorn (1 worker, gthread): wrk requests/s"

BENCH = Path(__file__).resolve().parent.parent
ROOT = BENCH.parent
#: The target against no security, from the bearer-token issue.
MIN_VS_NONE = 0.95
THREADS = 4
CONNECTIONS = 4
CONNECT_ATTEMPTS = 400
PEERS = {
    "authlib": "Authlib ResourceProtector",
    "flask-jwt-extended": "flask-jwt-extended",
    "pyjwt": "PyJWT middleware",
}
#: What each peer mode imports; a missing one is reported, not fatal.
PEER_MODULES = {
    "authlib": "authlib",
    "flask-jwt-extended": "flask_jwt_extended",
    "pyjwt": "jwt",
}
INSTALL_WRK = "wrk is not installed: apt-get install -y wrk (Debian/Ubuntu)"
_REQUESTS = re.compile(r"^Requests/sec:\s+([\d.]+)", re.MULTILINE)
_ERRORS = re.compile(r"Non-2xx or 3xx responses:\s+(\d+)")


@dataclass
class Server:
    """One gunicorn process serving one mode."""

    mode: str
    port: int
    process: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hello"

    def status(self, token: str | None) -> int:
        """GET ``/hello`` once; return the status."""
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            connection.request("GET", "/hello", headers=headers)
            response = connection.getresponse()
            response.read()
            return response.status
        finally:
            connection.close()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _missing_modules() -> dict[str, str]:
    """Return the peer modes whose library is not installed, with a note."""
    missing = {}
    for mode, module in PEER_MODULES.items():
        try:
            __import__(module)
        except ImportError:
            missing[mode] = f"{module} is not installed: pip install '.[bench]'"
    return missing


def _wait_listening(server: Server, log: Path) -> None:
    for _ in range(CONNECT_ATTEMPTS):
        try:
            with socket.create_connection(("127.0.0.1", server.port), timeout=5):
                return
        except ConnectionRefusedError:
            pass
        try:
            server.process.wait(timeout=0.05)
        except subprocess.TimeoutExpired:
            continue
        raise RuntimeError(f"gunicorn ({server.mode}) exited; see {log}")
    raise RuntimeError(f"gunicorn ({server.mode}) did not listen; see {log}")


@contextmanager
def _serve(mode: str, jwks: str, logs: Path) -> Iterator[Server]:
    port = _free_port()
    log = logs / f"{mode}.log"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("GUNICORN")},
        "BENCH_MODE": mode,
        "BENCH_JWKS": jwks,
        "PYTHONPATH": os.pathsep.join([str(ROOT), str(BENCH)]),
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
        "peers.hello:app",
    ]
    with log.open("ab") as output:
        process = subprocess.Popen(
            command,
            cwd=BENCH,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
        server = Server(mode, port, process)
        try:
            _wait_listening(server, log)
            yield server
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=30)


def _wrong_answers(server: Server, token: str, unscoped: str) -> str:
    """Say what a server answers wrongly, or return ``""``."""
    expected = (
        {"token": 200, "no scope": 200, "no token": 200}
        if server.mode == "none"
        else {"token": 200, "no scope": 403, "no token": 401}
    )
    got = {
        "token": server.status(token),
        "no scope": server.status(unscoped),
        "no token": server.status(None),
    }
    wrong = [f"{k} {got[k]} (expected {v})" for k, v in expected.items() if got[k] != v]
    return ", ".join(wrong)


def _wrk(wrk: str, server: Server, token: str, seconds: int) -> tuple[float, int]:
    """Run wrk once; return requests per second and non-2xx answers."""
    done = subprocess.run(
        [
            wrk,
            "-t1",
            f"-c{CONNECTIONS}",
            f"-d{seconds}s",
            "-H",
            f"Authorization: Bearer {token}",
            server.url,
        ],
        check=True,
        capture_output=True,
        text=True,
        timeout=seconds + 60,
    )
    rate = _REQUESTS.search(done.stdout)
    if rate is None:
        raise RuntimeError(f"wrk printed no Requests/sec: {done.stdout!r}")
    errors = _ERRORS.search(done.stdout)
    return float(rate.group(1)), int(errors.group(1)) if errors else 0


def _measure(
    wrk: str, servers: Sequence[Server], token: str, settings: Settings
) -> tuple[dict[str, list[float]], dict[str, int]]:
    """Run the interleaved rounds; return req/s per round and error counts."""
    rounds = 2 * settings.samples - 1
    seconds = 2 if settings.samples >= 5 else 1
    for server in servers:
        _wrk(wrk, server, token, 1)
    rates: dict[str, list[float]] = {s.mode: [] for s in servers}
    errors: dict[str, int] = dict.fromkeys(rates, 0)
    for index in range(rounds):
        shift = index % len(servers)
        for server in [*servers[shift:], *servers[:shift]]:
            rate, failed = _wrk(wrk, server, token, seconds)
            rates[server.mode].append(rate)
            errors[server.mode] += failed
    return rates, errors


def run(settings: Settings) -> list[Row]:
    """Serve every mode, check its answers, then time them with wrk."""
    wrk = shutil.which("wrk")
    if wrk is None:
        return [Row("bearer constraint under gunicorn", None, note=INSTALL_WRK)]
    missing = _missing_modules()
    modes = [mode for mode in MODES if mode not in missing]
    key = material.signing_key()
    jwks = json.dumps(material.public_jwks(key))
    token = material.mint(key)
    unscoped = material.mint(key, scope="other")
    with tempfile.TemporaryDirectory(prefix="bench-wrk-") as logs, ExitStack() as stack:
        servers = [stack.enter_context(_serve(m, jwks, Path(logs))) for m in modes]
        wrong = {s.mode: _wrong_answers(s, token, unscoped) for s in servers}
        good = [s for s in servers if not wrong[s.mode]]
        rates, errors = _measure(wrk, good, token, settings)
    stats = {mode: Stats.of(values, "req/s") for mode, values in rates.items()}
    notes = {**missing, **{m: f"WRONG STATUS: {w}" for m, w in wrong.items() if w}}
    notes.update({m: f"{n} non-2xx answers under wrk" for m, n in errors.items() if n})
    return _rows(stats, notes)


def _rows(stats: dict[str, Stats], notes: dict[str, str]) -> list[Row]:
    ours = stats.get("securityhandler")
    if ours is None or "none" not in stats:
        reason = notes.get("securityhandler") or notes.get("none", "not measured")
        return [Row("bearer constraint under gunicorn", None, note=reason)]
    rows = [
        Row(
            "securityhandler bearer constraint",
            ours,
            "no security",
            stats["none"],
            ratio(ours, stats["none"]),
            target=f">= {MIN_VS_NONE:g}x",
            passed=ratio(ours, stats["none"]) >= MIN_VS_NONE
            and not notes.get("securityhandler"),
            note=notes.get("securityhandler", ""),
        )
    ]
    for mode, name in PEERS.items():
        peer = stats.get(mode)
        if peer is None:
            rows.append(Row(f"vs {name}", None, note=notes.get(mode, "not measured")))
            continue
        rows.append(
            Row(
                "securityhandler bearer constraint",
                ours,
                name,
                peer,
                ratio(ours, peer),
                target="ahead (> 1x)",
                passed=ratio(ours, peer) > 1.0 and mode not in notes,
                note=notes.get(mode, ""),
            )
        )
    nocache = stats.get("securityhandler-nocache")
    if nocache is not None:
        rows.append(
            Row(
                "securityhandler, token cache off",
                nocache,
                "no security",
                stats["none"],
                ratio(nocache, stats["none"]),
                note=notes.get(
                    "securityhandler-nocache",
                    "every request verifies the signature, as the peers do",
                ),
            )
        )
    return rows
