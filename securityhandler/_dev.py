"""Development helpers behind ``securityhandler token`` and ``hash-password``.

``token`` signs a JWT with a local private key: a JWK or PEM file, or by
default a key kept under ``~/.cache/securityhandler/`` (created on first
use, readable by its owner only). ``--jwks`` prints the public key set to
serve as that local issuer's ``jwks_uri``.

``hash-password`` reads a password from a prompt (twice) or from stdin,
never from the command line, where it would stay in the shell history and
show in the process list.
"""

from __future__ import annotations

import getpass
import hmac
import json
import os
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, JWKRegistry, OKPKey, RSAKey
from werkzeug.security import generate_password_hash

from ._lint import EXIT_OK, EXIT_USAGE
from .realm import _BAD_NAME

#: The default key's file name, under the cache folder.
DEFAULT_KEY_NAME = "dev-key.jwk"
#: The ``sub`` of a token when ``--sub`` is not given.
DEFAULT_SUBJECT = "dev-user"
#: The algorithm each kind of key signs with unless the JWK names one.
_ALGORITHMS = {
    "RSA": "RS256",
    "P-256": "ES256",
    "P-384": "ES384",
    "P-521": "ES512",
    "Ed25519": "EdDSA",
}

PrivateKey = RSAKey | ECKey | OKPKey


class UsageError(Exception):
    """The command line asks for something that cannot be done: exit 2."""


def default_key_path() -> Path:
    """Return ``$XDG_CACHE_HOME/securityhandler/dev-key.jwk`` (``~/.cache``)."""
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(
        os.path.expanduser("~"), ".cache"
    )
    return Path(cache) / "securityhandler" / DEFAULT_KEY_NAME


def load_key(path: Path | None) -> PrivateKey:
    """Return the private key in ``path``, or the default one (created if missing).

    :raises UsageError: if the file is not a private JWK or PEM key.
    """
    if path is None:
        path = default_key_path()
        if not path.exists():
            _create_default_key(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise UsageError(f"Cannot read key file {path}: {exc.strerror}") from None
    key = _parse_key(data, path)
    if not key.is_private:
        raise UsageError(f"Key file {path} holds a public key; a private key signs")
    return key


def _create_default_key(path: Path) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    key = RSAKey.generate_key(2048, auto_kid=True)
    jwk = dict(key.as_dict(private=True))
    jwk["alg"] = "RS256"
    # Owner-only from the first byte: the key signs tokens a dev service trusts.
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as stream:
        json.dump(jwk, stream)


def _parse_key(data: bytes, path: Path) -> PrivateKey:
    text = data.strip()
    if text.startswith(b"{"):
        try:
            key = JWKRegistry.import_key(json.loads(text))
        except (ValueError, JoseError) as exc:
            raise UsageError(f"Key file {path} is not a usable JWK: {exc}") from None
        if not isinstance(key, (RSAKey, ECKey, OKPKey)):
            raise UsageError(f"Key file {path} holds a symmetric key; give a key pair")
        return key
    for kind in (RSAKey, ECKey, OKPKey):
        try:
            found: PrivateKey = kind.import_key(data)
        except (ValueError, TypeError, JoseError):
            continue
        return found
    raise UsageError(f"Key file {path} is neither a JWK nor a PEM private key")


def algorithm_of(key: PrivateKey) -> str:
    """Return the JWS algorithm a key signs with: its ``alg``, else by key type."""
    named = key.get("alg")
    if isinstance(named, str):
        return named
    kind = key.get("crv") if key.key_type != "RSA" else "RSA"
    algorithm = _ALGORITHMS.get(str(kind))
    if algorithm is None:
        raise UsageError(f"No signing algorithm for a {kind} key; give --alg")
    return algorithm


def kid_of(key: PrivateKey) -> str:
    """Return the key's ``kid``, else its RFC 7638 thumbprint."""
    kid = key.get("kid")
    return kid if isinstance(kid, str) and kid else key.thumbprint()


def parse_claim(text: str) -> tuple[str, Any]:
    """Parse ``name=value``; a value that reads as JSON is taken as such.

    :raises UsageError: without ``=`` or with an empty name.
    """
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise UsageError(f"Expected --claim NAME=VALUE, got {text!r}")
    try:
        return name, json.loads(value)
    except ValueError:
        return name, value


def mint(
    key: PrivateKey,
    claims: Mapping[str, Any],
    *,
    algorithm: str | None = None,
    now: float | None = None,
    ttl: int = 300,
) -> str:
    """Return a signed JWT of ``claims`` with ``iat`` and ``exp`` filled in."""
    algorithm = algorithm or algorithm_of(key)
    issued = int(time.time() if now is None else now)
    payload = {"iat": issued, "exp": issued + ttl, **claims}
    header = {"alg": algorithm, "typ": "JWT", "kid": kid_of(key)}
    try:
        return jwt.encode(header, payload, key, algorithms=[algorithm])
    except (ValueError, JoseError) as exc:
        raise UsageError(f"Cannot sign with this key as {algorithm}: {exc}") from None


def public_jwks(key: PrivateKey) -> dict[str, Any]:
    """Return the JWKS that publishes the public half of ``key``."""
    jwk = dict(key.as_dict(private=False))
    jwk.update(kid=kid_of(key), alg=algorithm_of(key), use="sig")
    return {"keys": [jwk]}


def run_token(
    *,
    key_file: str | None,
    algorithm: str | None,
    claims: Mapping[str, Any],
    ttl: int,
    jwks: bool,
) -> int:
    """Print a minted token (or the public JWKS); return the exit code."""
    try:
        key = load_key(None if key_file is None else Path(key_file))
        if jwks:
            print(json.dumps(public_jwks(key), indent=2))
        else:
            print(mint(key, claims, algorithm=algorithm, ttl=ttl))
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    return EXIT_OK


def token_claims(
    *,
    iss: str,
    audiences: Sequence[str],
    sub: str | None,
    roles: Sequence[str] | None,
    extra: Sequence[str],
) -> dict[str, Any]:
    """Return the claims ``token`` puts in a token, ``--claim`` ones last."""
    claims: dict[str, Any] = {
        "iss": iss,
        "aud": audiences[0] if len(audiences) == 1 else list(audiences),
        "sub": sub or DEFAULT_SUBJECT,
    }
    if roles is not None:
        claims["roles"] = list(roles)
    claims.update(parse_claim(text) for text in extra)
    return claims


# -- hash-password -----------------------------------------------------------


def read_password(*, from_stdin: bool) -> str:
    """Return a password from stdin's first line, or from a prompt typed twice.

    :raises UsageError: when the two entries differ or the password is empty.
    """
    if from_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = getpass.getpass("Password: ")
        again = getpass.getpass("Repeat password: ")
        if not hmac.compare_digest(password.encode(), again.encode()):
            raise UsageError("The two passwords do not match")
    if not password:
        raise UsageError("The password is empty")
    return password


def realm_line(user: str | None, hashed: str, roles: Sequence[str]) -> str:
    """Return the ``realm.properties`` line, or the hash alone without a user.

    :raises UsageError: for a user name or role a realm file cannot hold.
    """
    if user is None:
        return hashed
    if not user or _BAD_NAME.search(user):
        raise UsageError(
            f"User name {user!r} may not be empty or hold spaces, colons or "
            "control characters"
        )
    for role in roles:
        if not role or "," in role or role != role.strip():
            raise UsageError(f"Role {role!r} must be non-empty, without commas")
    return ", ".join([f"{user}: {hashed}", *roles])


def run_hash_password(
    user: str | None, roles: Sequence[str], *, from_stdin: bool
) -> int:
    """Read a password, print its scrypt hash line; return the exit code."""
    try:
        realm_line(user, "", roles)
        password = read_password(from_stdin=from_stdin)
        print(realm_line(user, generate_password_hash(password, "scrypt"), roles))
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    return EXIT_OK
