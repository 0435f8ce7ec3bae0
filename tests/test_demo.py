"""``securityhandler demo``: HTTPS with a throwaway certificate, a local token
issuer, and a banner whose curl and explain lines answer as printed."""

from __future__ import annotations

import base64
import datetime
import ipaddress
import json
import os
import re
import shlex
import shutil
import signal
import socket
import ssl
import stat
import subprocess
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from securityhandler._demo.issuer import (
    PACKAGED,
    local_issuer,
    mint_tokens,
    tamper,
    write_config,
)
from securityhandler._demo.tls import temporary_certificate, write_certificate
from securityhandler.authentication import BasicAuthenticator
from securityhandler.bearer import BearerAuthenticator
from securityhandler.cli import main
from securityhandler.config import load_config
from securityhandler.testing import LocalIssuer
from securityhandler.tokens import InvalidTokenError

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "examples" / "flask_app"
BANNER_END = "Press Ctrl-C to stop."
MAX_BANNER_LINES = 80
BASE_URL = re.compile(r"^securityhandler demo: the Flask example at (https://\S+)$")
GROUP = re.compile(r"^(\d{3}) ")
EXPORT = re.compile(r"^  export (\w+)=(\S+)$")
VERDICT = re.compile(r"^(?:ALLOW|DENY) (\d{3}):")
VARIABLE = re.compile(r"\$(\w+)")
NOW = datetime.datetime(2026, 3, 1, 12, 0, tzinfo=datetime.timezone.utc)


# -- the demo, run as a user runs it --------------------------------------------


@dataclass(frozen=True)
class Case:
    """One request of the banner: its curl line, explain line and status."""

    status: int
    curl: str
    explain: str


@dataclass(frozen=True)
class Banner:
    """What a running demo printed, and the environment to run its lines in."""

    base_url: str
    lines: list[str]
    exports: dict[str, str]
    cases: list[Case]
    env: Mapping[str, str]

    def path(self, label: str) -> Path:
        """Return the file named on the line that starts with ``label``."""
        (line,) = [line for line in self.lines if line.startswith(label)]
        return Path(line.split()[-1])


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


def _parse(lines: list[str], env: Mapping[str, str]) -> Banner:
    match = BASE_URL.match(lines[0]) if lines else None
    assert match, f"no banner: {lines[:3]}"
    exports, cases = {}, []
    status, curl = 0, ""
    for line in lines:
        if found := EXPORT.match(line):
            exports[found.group(1)] = found.group(2)
        elif found := GROUP.match(line):
            status = int(found.group(1))
        elif line.startswith("  curl "):
            curl = line.strip()
        elif "securityhandler explain " in line:
            cases.append(Case(status, curl, line.strip()))
    return Banner(match.group(1), lines, exports, cases, env)


@contextmanager
def _running_demo(
    command: list[str], cwd: Path, env: Mapping[str, str]
) -> Iterator[Banner]:
    with subprocess.Popen(
        command,
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    ) as process:
        try:
            yield _parse(_read_banner(process), env)
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=30)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Banner]:
    """Run ``securityhandler demo --port N`` from the checkout; yield its banner.

    The checkout is not installed in this virtual environment, so a
    ``securityhandler`` script on PATH stands for the console script that
    the explain lines call (the fresh-venv test runs the real one). It runs
    from an empty directory, so that it reads no file of the working one.
    """
    bin_dir = tmp_path_factory.mktemp("bin")
    script = bin_dir / "securityhandler"
    python = shlex.quote(sys.executable)
    script.write_text(f'#!/bin/sh\nexec {python} -m securityhandler.cli "$@"\n')
    script.chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    command = ["securityhandler", "demo", "--port", str(_free_port())]
    with _running_demo(command, tmp_path_factory.mktemp("demo"), env) as banner:
        yield banner


def _send(case: Case, exports: Mapping[str, str]) -> int:
    """Send what the case's curl line sends; return the status.

    Like curl it trusts only the ``--cacert`` file: requests verifies the
    server's certificate against it and the host name against the URL. The
    shell variables are put in as the shell would.
    """
    words = [
        VARIABLE.sub(lambda m: exports[m.group(1)], w) for w in shlex.split(case.curl)
    ]
    method = ""
    request: dict[str, Any] = {"headers": {}}
    args = iter(words[1:])
    for word in args:
        if word == "-X":
            method = next(args)
        elif word == "-u":
            user, _, password = next(args).partition(":")
            request["auth"] = (user, password)
        elif word == "-H":
            name, _, value = next(args).partition(":")
            request["headers"][name] = value.strip()
        elif word == "-d":
            request["data"] = next(args)
        elif word == "--cacert":
            request["verify"] = next(args)
        elif word == "-i":
            continue
        else:
            assert not word.startswith("-"), f"unknown curl option {word}"
            request["url"] = word
    method = method or ("POST" if "data" in request else "GET")
    response = requests.request(method, timeout=30, allow_redirects=False, **request)
    return response.status_code


def _explain(case: Case, banner: Banner) -> tuple[int, str]:
    """Run the explain line in a shell after the banner's exports.

    :return: the exit code and the status the first line names.
    """
    exports = [f"export {name}={token}" for name, token in banner.exports.items()]
    result = subprocess.run(
        ["sh", "-c", "\n".join([*exports, case.explain])],
        env=banner.env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    first = result.stdout.splitlines()[0] if result.stdout else result.stderr
    verdict = VERDICT.match(first)
    return result.returncode, verdict.group(1) if verdict else first


def _expected_explain(case: Case) -> tuple[int, str]:
    return (0 if case.status < 400 else 1), str(case.status)


def _kind(case: Case) -> str:
    if "Authorization: Bearer" in case.curl:
        return "token"
    return "password" if " -u " in case.curl else "none"


def _decoded(token: str, part: int = 1) -> dict[str, Any]:
    """Return a token's header (``part=0``) or claims, unverified."""
    text = token.split(".")[part]
    decoded: dict[str, Any] = json.loads(
        base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    )
    return decoded


def test_demo_banner_shows_each_answer(demo: Banner) -> None:
    kinds = {(_kind(case), case.status) for case in demo.cases}
    bad_tokens = {
        name
        for case in demo.cases
        if case.status == 401
        for name in VARIABLE.findall(case.curl)
    }

    assert kinds == {
        ("none", 200),
        ("token", 200),
        ("password", 200),
        ("none", 401),
        ("token", 401),
        ("token", 403),
        ("password", 403),
    }
    assert bad_tokens == {"EXPIRED", "TAMPERED"}
    assert all(demo.base_url + "/" in case.curl for case in demo.cases)


def test_demo_curl_lines_answer_as_printed(demo: Banner) -> None:
    statuses = [_send(case, demo.exports) for case in demo.cases]

    assert statuses == [case.status for case in demo.cases]


def test_demo_explain_lines_reproduce_decision(demo: Banner) -> None:
    outcomes = [_explain(case, demo) for case in demo.cases]

    assert outcomes == [_expected_explain(case) for case in demo.cases]


def test_demo_tokens_from_its_local_issuer(demo: Banner) -> None:
    config = yaml.safe_load(demo.path("Rules:").read_text())
    issuer = config["issuers"]["demo"]
    writer = _decoded(demo.exports["WRITER"])
    kid = _decoded(demo.exports["WRITER"], 0)["kid"]
    jwks = requests.get(issuer["jwks_uri"], timeout=30).json()

    assert (writer["iss"], writer["roles"]) == (issuer["issuer"], ["writer"])
    assert writer["exp"] - writer["iat"] == 3600
    assert kid in {key["kid"] for key in jwks["keys"]}


def test_demo_config_passes_check(demo: Banner) -> None:
    config = demo.path("Rules:")
    result = subprocess.run(
        [sys.executable, "-m", "securityhandler.cli", "check", str(config)],
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert result.returncode == 0, result.stdout
    assert "0 warnings, 0 notes" in result.stdout


def test_demo_files_in_private_directory(demo: Banner) -> None:
    config, cacert = demo.path("Rules:"), demo.path("TLS:")
    mode = stat.S_IMODE(cacert.parent.stat().st_mode)

    assert config.parent == cacert.parent
    assert mode == 0o700


def test_demo_certificate_passes_strict_checks(demo: Banner) -> None:
    # Python 3.13's default context (and urllib3's there) verify strictly
    # and accept a trusted leaf: the demo's certificate must pass both.
    context = ssl.create_default_context(cafile=demo.path("TLS:"))
    context.verify_flags |= ssl.VERIFY_X509_STRICT | ssl.VERIFY_X509_PARTIAL_CHAIN
    port = int(demo.base_url.rsplit(":", 1)[1])
    with (
        socket.create_connection(("127.0.0.1", port), timeout=30) as plain,
        context.wrap_socket(plain, server_hostname="localhost") as tls,
    ):
        names = tls.getpeercert()["subjectAltName"]  # type: ignore[index]

    assert names == (("IP Address", "127.0.0.1"), ("DNS", "localhost"))


def test_demo_plain_http_refused(demo: Banner) -> None:
    # Only TLS is served: a plain request is not answered, with or without
    # credentials, so a password sent by mistake never reaches the app.
    with pytest.raises(requests.ConnectionError):
        requests.get(
            demo.base_url.replace("https://", "http://") + "/api/orders",
            auth=("alice", "wonderland"),
            timeout=30,
        )


# -- from a fresh virtual environment -------------------------------------------

_NOT_SOURCE = shutil.ignore_patterns(
    ".venv", ".git", "build", "dist", "*.egg-info", "__pycache__", ".*_cache"
)


@pytest.fixture(scope="session")
def fresh_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Install the repository with ``pip`` into a new virtual environment.

    pip builds from a copy of the checkout, so that no build files land in
    it; dependencies come from the package index. Return the ``bin`` dir.
    """
    root = tmp_path_factory.mktemp("fresh")
    source = root / "source"
    shutil.copytree(REPO, source, symlinks=True, ignore=_NOT_SOURCE)
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run(
        [
            venv / "bin" / "python",
            "-m",
            "pip",
            "install",
            "--quiet",
            f"{source}[flask]",
        ],
        check=True,
        env=_without_checkout(),
        capture_output=True,
    )
    return venv / "bin"


def _without_checkout(path: str = os.environ["PATH"]) -> dict[str, str]:
    env = {name: value for name, value in os.environ.items() if name != "PYTHONPATH"}
    env["PATH"] = path
    return env


@pytest.mark.slow
def test_demo_from_fresh_venv_answers_as_printed(
    fresh_venv: Path, tmp_path: Path
) -> None:
    # The README's first command, as a new user runs it: the console script
    # of a fresh install, no checkout on the import path.
    env = _without_checkout(f"{fresh_venv}{os.pathsep}{os.environ['PATH']}")
    command = [str(fresh_venv / "securityhandler"), "demo", "--port", str(_free_port())]
    with _running_demo(command, tmp_path, env) as banner:
        statuses = [_send(case, banner.exports) for case in banner.cases]
        outcomes = [_explain(case, banner) for case in banner.cases]

    assert len(banner.cases) >= 7
    assert statuses == [case.status for case in banner.cases]
    assert outcomes == [_expected_explain(case) for case in banner.cases]


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


# -- the local issuer and the effective configuration --------------------------


@pytest.fixture
def demo_config(tmp_path: Path) -> Iterator[tuple[Path, LocalIssuer]]:
    """Write the effective configuration for a running local issuer."""
    with local_issuer() as issuer:
        yield write_config(tmp_path, issuer), issuer


def test_effective_config_adds_bearer_after_basic(
    demo_config: tuple[Path, LocalIssuer],
) -> None:
    path, issuer = demo_config
    config = load_config(path)
    kinds = [type(authenticator) for authenticator in config.authenticators]

    assert kinds == [BasicAuthenticator, BearerAuthenticator]
    assert config.issuers["demo"].issuer == issuer.issuer


def test_effective_config_keeps_packaged_constraints(
    demo_config: tuple[Path, LocalIssuer],
) -> None:
    packaged = yaml.safe_load(PACKAGED.read_text())
    effective = yaml.safe_load(demo_config[0].read_text())

    assert effective["constraints"] == packaged["constraints"]
    assert effective["realm"] == packaged["realm"]


def test_effective_config_finds_packaged_realm(
    demo_config: tuple[Path, LocalIssuer],
) -> None:
    # The file lives in the demo's private directory; the realm file stays
    # in the package, so the Basic users still sign in.
    service = load_config(demo_config[0]).login_services["staff"]

    assert service.login("alice", "wonderland") is not None


def test_effective_config_trusts_its_issuer(
    demo_config: tuple[Path, LocalIssuer],
) -> None:
    path, issuer = demo_config
    (service,) = [
        a.login_service
        for a in load_config(path).authenticators
        if isinstance(a, BearerAuthenticator)
    ]
    identity = service.verify(mint_tokens(issuer).tokens["WRITER"])

    assert (identity.name, identity.roles) == ("writer", frozenset({"writer"}))


def test_demo_tokens_expiry_from_issuer_clock() -> None:
    now = int(NOW.timestamp())
    issuer = LocalIssuer(algorithm="ES256", lifetime=3600, clock=lambda: now)
    try:
        minted = mint_tokens(issuer)
    finally:
        issuer.stop()
    expiries = {name: _decoded(token)["exp"] for name, token in minted.tokens.items()}

    assert expiries == {
        "WRITER": now + 3600,
        "READER": now + 3600,
        "EXPIRED": now - 3600,
        "TAMPERED": now + 3600,
    }
    assert minted.expires == now + 3600


def test_tampered_token_keeps_signature(local_issuer: LocalIssuer) -> None:
    token = local_issuer.mint(sub="reader", roles=["reader"])
    changed = tamper(token, roles=["writer"])
    service = local_issuer.login_service(role_claims=["roles"])

    assert changed.split(".")[::2] == token.split(".")[::2]
    assert _decoded(changed)["roles"] == ["writer"]
    with pytest.raises(InvalidTokenError, match="Signature does not verify"):
        service.verify(changed)


# Forks in a subprocess of its own, away from pytest's threads.
ISSUER_FORK_SCRIPT = """
import os, urllib.request
from securityhandler._demo.issuer import local_issuer

with local_issuer() as issuer:
    child = os.fork()
    if child:
        os.waitpid(child, 0)
        with urllib.request.urlopen(issuer.jwks_uri, timeout=30) as answer:
            print("after child:", answer.status)
if child == 0:
    os._exit(0)
try:
    urllib.request.urlopen(issuer.jwks_uri, timeout=30)
except OSError:
    print("after owner: stopped")
"""


def test_local_issuer_survives_forked_child() -> None:
    # Gunicorn's workers leave through the demo's frames: one exiting must
    # neither stop the issuer nor wait for its thread, which only the
    # arbiter runs.
    result = subprocess.run(
        [sys.executable, "-c", ISSUER_FORK_SCRIPT],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )

    assert result.stdout.splitlines() == ["after child: 200", "after owner: stopped"]
