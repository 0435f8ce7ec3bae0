"""``securityhandler demo``: HTTPS with a throwaway certificate, and the
banner's curl lines answer as printed."""

from __future__ import annotations

import datetime
import ipaddress
import re
import shlex
import signal
import socket
import ssl
import stat
import subprocess
import sys
from collections.abc import Iterator
from importlib import resources
from pathlib import Path

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from securityhandler._demo.tls import temporary_certificate, write_certificate
from securityhandler.cli import main

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "flask_app"
BANNER_END = "Press Ctrl-C to stop."
MAX_BANNER_LINES = 50
CURL_LINE = re.compile(r"^\s+(curl\s.+?)\s+# expect (\d{3}):")
NOW = datetime.datetime(2026, 3, 1, 12, 0, tzinfo=datetime.timezone.utc)


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
    """Send what a ``curl -i --cacert CA [-X METHOD] [-u user:pass] URL`` sends.

    Like curl, it trusts only the ``--cacert`` file: requests verifies the
    server's certificate against it and the host name against the URL.
    """
    method, auth, url, cacert = "GET", None, "", ""
    args = iter(words[1:])
    for word in args:
        if word == "-X":
            method = next(args)
        elif word == "-u":
            user, _, password = next(args).partition(":")
            auth = (user, password)
        elif word == "--cacert":
            cacert = next(args)
        elif not word.startswith("-"):
            url = word
    response = requests.request(
        method, url, auth=auth, verify=cacert, timeout=30, allow_redirects=False
    )
    return response.status_code


def _cacert(words: list[str]) -> Path:
    return Path(words[words.index("--cacert") + 1])


def test_demo_banner_shows_each_answer(demo: tuple[int, list[str]]) -> None:
    port, banner = demo
    lines = _curl_lines(banner)
    kinds = {("-u" in words, status) for words, status in lines}

    assert {(False, 200), (False, 401), (True, 200), (True, 403)} <= kinds
    assert all(words[-1].startswith(f"https://127.0.0.1:{port}/") for words, _ in lines)


def test_demo_curl_lines_answer_as_printed(demo: tuple[int, list[str]]) -> None:
    lines = _curl_lines(demo[1])

    assert [_send(words) for words, _ in lines] == [status for _, status in lines]


def test_demo_certificate_in_private_directory(demo: tuple[int, list[str]]) -> None:
    banner = demo[1]
    (cacert,) = {_cacert(words) for words, _ in _curl_lines(banner)}
    mode = stat.S_IMODE(cacert.parent.stat().st_mode)
    named = f"TLS: self-signed for 127.0.0.1 and localhost, valid 1 day: {cacert}"

    assert mode == 0o700
    assert named in banner


def test_demo_certificate_passes_strict_checks(
    demo: tuple[int, list[str]],
) -> None:
    # Python 3.13's default context (and urllib3's there) verify strictly
    # and accept a trusted leaf: the demo's certificate must pass both.
    port, banner = demo
    (cacert,) = {_cacert(words) for words, _ in _curl_lines(banner)}
    context = ssl.create_default_context(cafile=cacert)
    context.verify_flags |= ssl.VERIFY_X509_STRICT | ssl.VERIFY_X509_PARTIAL_CHAIN
    with (
        socket.create_connection(("127.0.0.1", port), timeout=30) as plain,
        context.wrap_socket(plain, server_hostname="localhost") as tls,
    ):
        names = tls.getpeercert()["subjectAltName"]  # type: ignore[index]

    assert names == (("IP Address", "127.0.0.1"), ("DNS", "localhost"))


def test_demo_plain_http_refused(demo: tuple[int, list[str]]) -> None:
    # Only TLS is served: a plain request is not answered, with or without
    # credentials, so a password sent by mistake never reaches the app.
    with pytest.raises(requests.ConnectionError):
        requests.get(
            f"http://127.0.0.1:{demo[0]}/api/orders",
            auth=("alice", "wonderland"),
            timeout=30,
        )


# -- the certificate ----------------------------------------------------------


@pytest.fixture(scope="module")
def certificate(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[x509.Certificate, Path]:
    """Write a certificate valid from :data:`NOW`; return it and its key file."""
    paths = write_certificate(tmp_path_factory.mktemp("tls"), now=NOW)
    return x509.load_pem_x509_certificate(paths.cert.read_bytes()), paths.key


def test_certificate_names_loopback_host(
    certificate: tuple[x509.Certificate, Path],
) -> None:
    extensions = certificate[0].extensions
    names = extensions.get_extension_for_class(x509.SubjectAlternativeName).value

    assert names.get_values_for_type(x509.IPAddress) == [
        ipaddress.IPv4Address("127.0.0.1")
    ]
    assert names.get_values_for_type(x509.DNSName) == ["localhost"]


def test_certificate_valid_one_day(
    certificate: tuple[x509.Certificate, Path],
) -> None:
    cert = certificate[0]

    assert cert.not_valid_before_utc == NOW
    assert cert.not_valid_after_utc == NOW + datetime.timedelta(days=1)


def test_certificate_key_ec_p256_private(
    certificate: tuple[x509.Certificate, Path],
) -> None:
    cert, key_file = certificate
    key = load_pem_private_key(key_file.read_bytes(), password=None)

    assert isinstance(key, ec.EllipticCurvePrivateKey)
    assert isinstance(key.curve, ec.SECP256R1)
    assert key.public_key() == cert.public_key()
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600


def test_temporary_certificate_removed_on_exit() -> None:
    with temporary_certificate() as paths:
        inside = stat.S_IMODE(paths.directory.stat().st_mode)

    assert inside == 0o700
    assert not paths.directory.exists()


# Forks in a subprocess of its own, away from pytest's threads.
FORK_SCRIPT = """
import os
from securityhandler._demo.tls import temporary_certificate

with temporary_certificate() as paths:
    child = os.fork()
    if child:
        os.waitpid(child, 0)
        print("after child:", paths.cert.exists())
if child == 0:
    os._exit(0)
print("after owner:", paths.directory.exists())
"""


def test_temporary_certificate_survives_forked_child() -> None:
    # Gunicorn's workers are forks that leave through the demo's frames;
    # one exiting must not take the certificate from the others.
    result = subprocess.run(
        [sys.executable, "-c", FORK_SCRIPT],
        capture_output=True,
        text=True,
        check=True,
    )

    assert result.stdout.splitlines() == ["after child: True", "after owner: False"]


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
