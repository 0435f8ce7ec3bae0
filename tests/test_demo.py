"""``securityhandler demo``: the banner's curl lines answer as printed."""

from __future__ import annotations

import re
import shlex
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from importlib import resources
from pathlib import Path

import pytest
import requests

from securityhandler.cli import main

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "flask_app"
BANNER_END = "Press Ctrl-C to stop."
MAX_BANNER_LINES = 50
CURL_LINE = re.compile(r"^\s+(curl\s.+?)\s+# expect (\d{3}):")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _read_banner(process: subprocess.Popen[str]) -> list[str]:
    assert process.stdout is not None
    lines = []
    for _ in range(MAX_BANNER_LINES):
        # The banner is printed once gunicorn listens: no polling needed.
        line = process.stdout.readline()
        if not line or line.strip() == BANNER_END:
            break
        lines.append(line.rstrip("\n"))
    return lines


@pytest.fixture(scope="module")
def demo(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[int, list[str]]]:
    """Run ``securityhandler demo --port N``; yield the port and the banner.

    It runs from an empty directory, so that ``-m`` imports the installed
    package (shipped demo files included), not the checkout.
    """
    port = _free_port()
    with subprocess.Popen(
        [sys.executable, "-m", "securityhandler.cli", "demo", "--port", str(port)],
        cwd=tmp_path_factory.mktemp("demo"),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    ) as process:
        try:
            yield port, _read_banner(process)
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=30)


def _curl_lines(banner: list[str]) -> list[tuple[list[str], int]]:
    found = []
    for line in banner:
        match = CURL_LINE.match(line)
        if match:
            found.append((shlex.split(match.group(1)), int(match.group(2))))
    return found


def _send(words: list[str]) -> int:
    """Send what a ``curl [-i] [-X METHOD] [-u user:pass] URL`` line sends."""
    method, auth, url = "GET", None, ""
    args = iter(words[1:])
    for word in args:
        if word == "-X":
            method = next(args)
        elif word == "-u":
            user, _, password = next(args).partition(":")
            auth = (user, password)
        elif not word.startswith("-"):
            url = word
    response = requests.request(
        method, url, auth=auth, timeout=30, allow_redirects=False
    )
    return response.status_code


def test_demo_banner_shows_each_answer(demo: tuple[int, list[str]]) -> None:
    port, banner = demo
    lines = _curl_lines(banner)
    kinds = {("-u" in words, status) for words, status in lines}

    assert {(False, 200), (False, 401), (True, 200), (True, 403)} <= kinds
    assert all(words[-1].startswith(f"http://127.0.0.1:{port}/") for words, _ in lines)


def test_demo_curl_lines_answer_as_printed(demo: tuple[int, list[str]]) -> None:
    lines = _curl_lines(demo[1])

    assert [_send(words) for words, _ in lines] == [status for _, status in lines]


@pytest.mark.parametrize("name", ["app.py", "security.yaml", "realm.properties"])
def test_demo_ships_flask_example(name: str) -> None:
    shipped = resources.files("securityhandler._demo").joinpath(name).read_bytes()

    assert shipped == (EXAMPLE / name).read_bytes()


@pytest.mark.parametrize("port", ["-1", "65536", "http"])
def test_demo_bad_port_usage_error(
    port: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["demo", "--port", port])

    assert exit_info.value.code == 2
    assert "--port" in capsys.readouterr().err
