"""The demo's local token issuer, the tokens it mints and the config that trusts it.

At start the demo runs a :class:`~securityhandler.testing.LocalIssuer` on
loopback in its own process, mints a few tokens for the banner, and writes
its effective configuration: the packaged ``security.yaml`` plus an issuer
entry for the local issuer and a bearer authenticator next to Basic, in
front of the same constraints. ``securityhandler explain`` reads that file,
so the banner's explain lines decide as the running demo does.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ..testing import LocalIssuer

#: The configuration the Flask example ships with.
PACKAGED = Path(__file__).resolve().with_name("security.yaml")
#: The name of the local issuer in the effective configuration.
ISSUER_NAME = "demo"
#: The ``aud`` of the demo's tokens, and the audience the issuer entry accepts.
AUDIENCE = "securityhandler-demo"
#: ES256 keeps the printed tokens short; the issuer entry accepts only it.
ALGORITHM = "ES256"
#: Seconds the minted tokens are valid.
TOKEN_LIFETIME = 3600


@contextmanager
def local_issuer() -> Iterator[LocalIssuer]:
    """Yield a started local issuer, stopped on exit by its owner only.

    Gunicorn's workers are forks that leave through the demo's frames; the
    issuer's server thread runs in the arbiter alone, and stopping it from
    a worker would wait forever for a thread the fork did not copy.
    """
    owner = os.getpid()
    issuer = LocalIssuer(
        audience=AUDIENCE, algorithm=ALGORITHM, lifetime=TOKEN_LIFETIME
    ).start()
    try:
        yield issuer
    finally:
        if os.getpid() == owner:
            issuer.stop()


@dataclass(frozen=True)
class DemoTokens:
    """The tokens the banner prints, by the shell variable that holds each.

    :param tokens: token by variable name (``WRITER``, ``READER``, ...).
    :param expires: when the valid ones expire (seconds since the epoch).
    """

    tokens: Mapping[str, str]
    expires: int


#: What each token is, by its variable name, in the banner's words.
TOKEN_NOTES: Mapping[str, str] = {
    "WRITER": "sub 'writer', roles [writer]",
    "READER": "sub 'reader', roles [reader]",
    "EXPIRED": "sub 'reader', roles [reader]; exp passed an hour ago",
    "TAMPERED": "READER with its roles changed to [writer], signature kept",
}


def mint_tokens(issuer: LocalIssuer) -> DemoTokens:
    """Mint the banner's tokens: a writer, a reader, an expired, a tampered one."""
    now = int(issuer.clock())
    reader = issuer.mint(sub="reader", roles=["reader"])
    tokens = {
        "WRITER": issuer.mint(sub="writer", roles=["writer"]),
        "READER": reader,
        "EXPIRED": issuer.mint(
            sub="reader",
            roles=["reader"],
            iat=now - 2 * TOKEN_LIFETIME,
            exp=now - TOKEN_LIFETIME,
        ),
        "TAMPERED": tamper(reader, roles=["writer"]),
    }
    return DemoTokens(tokens, now + issuer.lifetime)


def tamper(token: str, **claims: Any) -> str:
    """Return ``token`` with ``claims`` changed and its old signature kept."""
    header, payload, signature = token.split(".")
    decoded = json.loads(_b64decode(payload))
    decoded.update(claims)
    changed = json.dumps(decoded, separators=(",", ":")).encode("utf-8")
    return ".".join((header, _b64encode(changed), signature))


def _b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


# -- The effective configuration -----------------------------------------------


def effective_config(issuer: LocalIssuer) -> dict[str, Any]:
    """Return the packaged configuration with the local issuer added.

    The realm file's path is made absolute, since the effective file lives
    elsewhere; the bearer authenticator comes after Basic.
    """
    packaged: dict[str, Any] = yaml.safe_load(PACKAGED.read_text(encoding="utf-8"))
    for service in packaged.get("login_services", {}).values():
        if "file" in service:
            service["file"] = str(PACKAGED.parent / service["file"])
    entry = {
        "issuer": issuer.issuer,
        "audiences": [issuer.audience],
        "jwks_uri": issuer.jwks_uri,
        "algorithms": [ALGORITHM],
        "role_claims": ["roles"],
    }
    # Settings first, then who may sign in, then the rules: the packaged
    # file's order, with the issuer before the authenticators naming it.
    config = dict(packaged)
    authenticators = config.pop("authenticators", [])
    constraints = config.pop("constraints", [])
    config["issuers"] = {ISSUER_NAME: entry}
    config["authenticators"] = [
        *authenticators,
        {"type": "bearer", "issuers": [ISSUER_NAME]},
    ]
    config["constraints"] = constraints
    return config


def write_config(directory: Path, issuer: LocalIssuer) -> Path:
    """Write the effective configuration into ``directory``; return its path."""
    path = directory / "security.yaml"
    header = (
        "# securityhandler demo: the packaged rules plus a local token issuer.\n"
        f"# Packaged: {PACKAGED} (its comments say why each rule is there).\n"
        "# Made at start in the demo's private directory, removed on exit.\n"
    )
    path.write_text(header + render(effective_config(issuer)), encoding="utf-8")
    return path


def render(config: Mapping[str, Any]) -> str:
    """Return ``config`` as YAML with one line per list item or named entry.

    One constraint per line keeps the file as readable as the packaged one,
    and the line numbers ``explain`` cites easy to follow.
    """
    lines = []
    for key, value in config.items():
        if isinstance(value, Mapping):
            lines.append(f"{key}:")
            lines.extend(f"  {name}: {_flow(entry)}" for name, entry in value.items())
        elif isinstance(value, list):
            lines.append(f"{key}:")
            lines.extend(f"  - {_flow(item)}" for item in value)
        else:
            lines.append(f"{key}: {_flow(value)}")
    return "\n".join(lines) + "\n"


def _flow(value: object) -> str:
    text: str = yaml.safe_dump(
        value, default_flow_style=True, sort_keys=False, width=1 << 16
    )
    # A lone scalar is dumped as a document: drop its end marker.
    return text.removesuffix("\n...\n").strip()
