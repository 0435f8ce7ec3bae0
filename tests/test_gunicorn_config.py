"""The gunicorn config module and the Dockerfile's command, run for real.

There is no Docker engine on the machines these tests run on, so the image
is not built: the tests read the ``CMD`` line from the Dockerfile and run that
command here, in a subprocess from the repository root (the image's working
directory holds the same tree), with ``PORT`` set to a free port and
``BIND_HOST`` set to loopback. Waiting is on events (the server's own output
lines, a socket read), bounded by a deadline; nothing sleeps.
"""

from __future__ import annotations

import base64
import importlib.util
import json
import os
import queue
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import requests
from gunicorn.config import Config

from securityhandler.errors import ConfigError
from tests._servers import free_port

ROOT = Path(__file__).resolve().parent.parent
CONFIG_MODULE = ROOT / "securityhandler" / "gunicorn.py"
TEST_APP = "tests._gunicorn_app:app"
PASSWORD = "correct-horse-battery"  # tests/_gunicorn_app.py's user
TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
CLOUD_TRACE = "105445aa7843bc8bf206b12000100000/1;o=1"
# How long a server may take to start; a bound for failure, not a pause.
START_DEADLINE = 60.0
# Environment variables the config module reads, cleared for every run.
CONFIG_VARIABLES = (
    "PORT",
    "BIND_HOST",
    "WEB_CONCURRENCY",
    "GUNICORN_THREADS",
    "GUNICORN_GRACEFUL_TIMEOUT",
    "FORWARDED_ALLOW_IPS",
    "LOG_LEVEL",
    "GUNICORN_CMD_ARGS",
)


def dockerfile_cmd() -> list[str]:
    """Return the exec-form ``CMD`` of the Dockerfile, continuation lines joined."""
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    commands = [line for line in text.splitlines() if line.startswith("CMD ")]
    assert len(commands) == 1, "the Dockerfile must have exactly one CMD"
    argv = json.loads(commands[0][len("CMD ") :])
    assert isinstance(argv, list), "CMD must be in exec form (a JSON array)"
    return argv


def load_config(monkeypatch: pytest.MonkeyPatch, **env: str) -> ModuleType:
    """Execute a fresh copy of the config module with ``env`` set."""
    for name in CONFIG_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    spec = importlib.util.spec_from_file_location(
        "securityhandler._gunicorn_under_test", CONFIG_MODULE
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class Server:
    """The Dockerfile's command running as a subprocess, its output collected.

    Two reader threads put every line of stdout and stderr on a queue, so
    that the test waits for output as an event.
    """

    def __init__(self, argv: list[str], **env: str) -> None:
        self.port = free_port()
        environ = {k: v for k, v in os.environ.items() if k not in CONFIG_VARIABLES}
        environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{environ['PATH']}"
        environ.update({"PORT": str(self.port), "BIND_HOST": "127.0.0.1", **env})
        executable = shutil.which(argv[0], path=environ["PATH"])
        assert executable, f"{argv[0]} is not installed"
        self.lines: list[str] = []
        self._events: queue.Queue[str | None] = queue.Queue()
        self.process = subprocess.Popen(
            [executable, *argv[1:]],
            cwd=ROOT,
            env=environ,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        assert self.process.stderr is not None
        self._readers = [
            threading.Thread(target=self._read, args=(stream,), daemon=True)
            for stream in (self.process.stdout, self.process.stderr)
        ]
        for reader in self._readers:
            reader.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _read(self, stream: Any) -> None:
        for line in stream:
            self.lines.append(line.rstrip("\n"))
            self._events.put(line)
        self._events.put(None)

    def next_line(self, deadline: float) -> str | None:
        """Return the next output line, ``None`` at EOF; fail at ``deadline``."""
        try:
            return self._events.get(timeout=max(deadline - time.monotonic(), 0))
        except queue.Empty:
            pytest.fail(f"no server output before the deadline: {self.lines}")

    def wait_until_answering(self) -> None:
        """Poll the port once per line the server writes, until it accepts."""
        deadline = time.monotonic() + START_DEADLINE
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except ConnectionRefusedError:
                if self.next_line(deadline) is None and self.process.poll() is not None:
                    pytest.fail(f"server exited at start: {self.lines}")

    def wait_for_message(self, message: str) -> None:
        """Return once a JSON line whose message is ``message`` was written."""
        deadline = time.monotonic() + START_DEADLINE
        while True:
            line = self.next_line(deadline)
            if line is None:
                pytest.fail(f"server closed its output: {self.lines}")
            if f'"message": {json.dumps(message)}' in line:
                return

    def stop(self) -> int:
        """Send SIGTERM, then wait for the exit."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.wait_exit()

    def wait_exit(self) -> int:
        """Wait for the process to exit and its output to be read."""
        code = self.process.wait(timeout=START_DEADLINE)
        for reader in self._readers:
            reader.join(timeout=START_DEADLINE)
        return code

    def close(self) -> None:
        """Kill the process if it still runs; release its pipes."""
        if self.process.poll() is None:
            self.process.kill()
        self.wait_exit()
        for stream in (self.process.stdout, self.process.stderr):
            if stream is not None:
                stream.close()


@pytest.fixture
def test_app_server() -> Iterator[Server]:
    """Run the Dockerfile's command with the test application swapped in."""
    server = Server([*dockerfile_cmd()[:-1], TEST_APP], GOOGLE_CLOUD_PROJECT="demo-p")
    yield server
    server.close()


def parsed(lines: list[str]) -> list[dict[str, Any]]:
    return [json.loads(line) for line in lines]


def test_dockerfile_cmd_uses_config_module() -> None:
    argv = dockerfile_cmd()
    assert argv[:3] == ["gunicorn", "-c", "python:securityhandler.gunicorn"]
    assert argv[3] == "examples.flask_app.app:app"


def test_dockerfile_cmd_serves_example_app() -> None:
    server = Server(dockerfile_cmd())
    try:
        server.wait_until_answering()
        response = requests.get(f"{server.url}/healthz", timeout=START_DEADLINE)
        code = server.stop()
    finally:
        server.close()
    assert response.status_code == 200
    assert code == 0
    assert all("severity" in line for line in parsed(server.lines))


def test_server_lines_json_with_both_traces(test_app_server: Server) -> None:
    server = test_app_server
    server.wait_until_answering()
    requests.get(
        f"{server.url}/admin/x",
        headers={"traceparent": TRACEPARENT},
        timeout=START_DEADLINE,
    )
    requests.get(
        f"{server.url}/admin/y",
        headers={"X-Cloud-Trace-Context": CLOUD_TRACE},
        timeout=START_DEADLINE,
    )
    server.stop()
    lines = parsed(server.lines)
    traces = {line.get("logging.googleapis.com/trace") for line in lines}
    assert all("severity" in line for line in lines)
    assert "projects/demo-p/traces/4bf92f3577b34da6a3ce929d0e0e4736" in traces
    assert "projects/demo-p/traces/105445aa7843bc8bf206b12000100000" in traces


def test_server_lines_hold_no_secret(test_app_server: Server) -> None:
    server = test_app_server
    server.wait_until_answering()
    passwords = (PASSWORD, "wrong-" + PASSWORD)
    secrets = ["s3cr3t-cookie", "s3cr3t-query", *passwords]
    secrets += [base64.b64encode(f"alice:{p}".encode()).decode() for p in passwords]
    for password in passwords:
        requests.get(
            f"{server.url}/private/x?access_token=s3cr3t-query",
            auth=("alice", password),
            cookies={"session": "s3cr3t-cookie"},
            timeout=START_DEADLINE,
        )
    server.stop()
    audit = [line for line in parsed(server.lines) if "audit" in line]
    assert {line["audit"]["decision"] for line in audit} >= {"authenticated", "deny"}
    assert not [line for line in server.lines for s in secrets if s in line]


def test_sigterm_lets_inflight_request_finish(
    test_app_server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    # /slow answers only after its worker received SIGTERM (see
    # tests/_gunicorn_app.py), so the answer proves the request outlived it.
    server = test_app_server
    grace = load_config(monkeypatch).graceful_timeout
    server.wait_until_answering()
    with socket.create_connection(("127.0.0.1", server.port)) as client:
        client.settimeout(START_DEADLINE)
        client.sendall(b"GET /slow HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        server.wait_for_message("slow request started")
        server.process.send_signal(signal.SIGTERM)
        answer = b"".join(iter(lambda: client.recv(4096), b""))
    code = server.process.wait(timeout=grace)
    assert answer.startswith(b"HTTP/1.1 200 ")
    assert answer.endswith(b"slow done after SIGTERM\n")
    assert code == 0


def test_bad_port_stops_with_named_error() -> None:
    server = Server([*dockerfile_cmd()[:-1], TEST_APP], PORT="80a")
    try:
        code = server.wait_exit()
    finally:
        server.close()
    output = "\n".join(server.lines)
    assert code == 1
    assert "Environment variable PORT must be a whole number" in output
    assert "Traceback" not in output


def test_config_defaults_fit_cloud_run(monkeypatch: pytest.MonkeyPatch) -> None:
    config = load_config(monkeypatch)
    assert (config.bind, config.worker_class, config.threads) == (
        "0.0.0.0:8080",
        "gthread",
        8,
    )
    assert config.workers == len(os.sched_getaffinity(0))
    assert (config.timeout, config.graceful_timeout, config.forwarded_allow_ips) == (
        0,
        8,
        "*",
    )


def test_config_reads_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    config = load_config(
        monkeypatch,
        PORT="9000",
        BIND_HOST="::1",
        WEB_CONCURRENCY="3",
        GUNICORN_THREADS="4",
        GUNICORN_GRACEFUL_TIMEOUT="5",
        FORWARDED_ALLOW_IPS="10.0.0.0/8",
        LOG_LEVEL="WARNING",
    )
    assert (config.bind, config.workers, config.threads) == ("[::1]:9000", 3, 4)
    assert (config.graceful_timeout, config.forwarded_allow_ips) == (5, "10.0.0.0/8")
    assert config.loglevel == "warning"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        pytest.param("PORT", "http", id="port-word"),
        pytest.param("PORT", "0", id="port-zero"),
        pytest.param("PORT", "65536", id="port-too-big"),
        pytest.param("PORT", "8_080", id="port-underscore"),
        pytest.param("WEB_CONCURRENCY", "0", id="workers-zero"),
        pytest.param("WEB_CONCURRENCY", "-2", id="workers-negative"),
        pytest.param("GUNICORN_THREADS", "many", id="threads-word"),
        pytest.param("GUNICORN_GRACEFUL_TIMEOUT", "8.5", id="graceful-fraction"),
        pytest.param("LOG_LEVEL", "verbose", id="log-level-unknown"),
        pytest.param("BIND_HOST", "example.com", id="bind-host-name"),
    ],
)
def test_config_bad_variable_named(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    with pytest.raises(ConfigError, match=f"Environment variable {name} must be"):
        load_config(monkeypatch, **{name: value})


def test_config_sets_only_intended_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    # gunicorn applies every module-level name that matches a setting: a
    # helper named like one would silently change the server.
    config = load_config(monkeypatch)
    assert set(vars(config)) & set(Config().settings) == {
        "bind",
        "worker_class",
        "workers",
        "threads",
        "timeout",
        "graceful_timeout",
        "forwarded_allow_ips",
        "secure_scheme_headers",
        "forwarder_headers",
        "control_socket_disable",
        "accesslog",
        "errorlog",
        "loglevel",
        "logger_class",
    }


def test_config_trusts_only_forwarded_proto(monkeypatch: pytest.MonkeyPatch) -> None:
    config = load_config(monkeypatch)
    assert config.secure_scheme_headers == {"X-FORWARDED-PROTO": "https"}
    assert config.forwarder_headers == ""
