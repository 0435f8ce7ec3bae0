"""Jetty realm files and inline users: :class:`HashLoginService`.

A realm file holds one user per line, in the format of Jetty's
``realm.properties``::

    # user: credential[, role ...]
    alice: scrypt:32768:8:1$Qd2f...$8e1c..., admin, writer
    bob:   MD5:5f4dcc3b5aa765d61d8327deb882cf99, reader
    carol: OBF:1v2j1uum1xtv1zej1zer1xtn1uvk1v1v

Credentials take these forms:

- ``scrypt:N:r:p$salt$hex`` and ``pbkdf2:digest:iterations$salt$hex``:
  Werkzeug hashes, from :func:`werkzeug.security.generate_password_hash` or
  ``securityhandler hash-password``; the only forms fit for new users.
- ``MD5:<32 hex digits>``: Jetty's unsalted MD5 of the ISO-8859-1 bytes of
  the password.
- ``OBF:<digits>``: Jetty's reversible obfuscation, a plain password in
  disguise.
- plain text: allowed, with a :class:`~securityhandler.errors.SecurityWarning`.
  A plain password may not look like a scheme (``NAME:…`` in capitals, or
  ``method$salt$hash``); obfuscate one that does.
- ``CRYPT:…``: refused, since ``crypt(3)`` left the standard library in
  Python 3.13.

``MD5:`` and ``OBF:`` exist so that a Jetty realm file works unchanged; both
fall to an offline guess in moments, so move users to scrypt hashes. Unlike
Java properties, the file is read as UTF-8 and knows no ``\\`` escapes,
``!`` comments or ``=`` separators.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import re
import secrets
import threading
import warnings
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from werkzeug.security import check_password_hash, generate_password_hash

from ._clock import now
from .errors import ConfigError, SecurityWarning
from .identity import UserIdentity

log = logging.getLogger(__name__)

#: Seconds a successful verification of a slow hash is remembered.
CACHE_TTL = 60.0
#: Most verifications remembered at once, per login service.
CACHE_SIZE = 1024

_OBF_GROUP = re.compile(r"U[0-9a-z]{4}|[0-9a-z]{4}")
_MD5_HEX = re.compile(r"[0-9a-fA-F]{32}")
_WERKZEUG = re.compile(r"(scrypt|pbkdf2)(?::([^$]*))?\$([^$]+)\$([0-9a-f]+)")
_WERKZEUG_PREFIX = re.compile(r"(?:scrypt|pbkdf2)[:$]")
# What reads as a scheme rather than a password: Jetty's upper-case
# ``NAME:``, a known prefix in the wrong case, or Werkzeug's
# ``method$salt$hash`` shape with a method we do not know.
_SCHEME_LIKE = re.compile(
    r"[A-Z][A-Z0-9_-]*:|(?i:obf|md5|crypt):|[a-z][a-z0-9_-]*(?::[^$]*)?\$[^$]*\$"
)
_BAD_NAME = re.compile(r"[\s\x00-\x1f\x7f:]")
_INLINE_KEYS = frozenset({"password", "roles"})
_STRENGTH = {"plain": 0, "MD5": 1, "pbkdf2": 2, "scrypt": 3}
_MAX_SCRYPT_MEMORY = 2**31 - 1


def deobfuscate(text: str) -> str:
    """Return the password Jetty's ``Password.obfuscate`` turned into ``text``.

    Each byte of the UTF-8 password is four base-36 digits, or ``U`` and
    four digits for a byte pair outside ASCII. The ``OBF:`` prefix is
    optional.

    :raises ValueError: if ``text`` is not such an encoding.
    """
    if text.startswith("OBF:"):
        text = text[4:]
    data = bytearray()
    position = 0
    while position < len(text):
        group = _OBF_GROUP.match(text, position)
        if group is None:
            raise ValueError("Malformed OBF: digits")
        data.append(_obf_byte(group.group()))
        position = group.end()
    return data.decode("utf-8")


def _obf_byte(group: str) -> int:
    if group.startswith("U"):
        value = int(group[1:], 36)
        if value > 0xFFFF:
            raise ValueError("Malformed OBF: digits")
        return value >> 8

    # Four digits hold (127 + b1 + b2) * 256 + (127 + b1 - b2) for the byte b1
    # and its mirror b2: the two halves sum to 254 + 2 * b1.
    value = int(group, 36)
    twice = value // 256 + value % 256 - 254
    if twice < 0 or twice > 254 or twice % 2:
        raise ValueError("Malformed OBF: digits")
    return twice // 2


class _Credential(ABC):
    """A stored credential that checks a password."""

    #: ``plain``, ``MD5`` or the Werkzeug method such as ``scrypt:32768:8:1``.
    method: str = "plain"
    #: Whether a check costs enough to be worth caching.
    slow: bool = False

    @abstractmethod
    def verify(self, password: str) -> bool:
        """Tell whether ``password`` matches, in constant time for its length."""

    @property
    def strength(self) -> int:
        """Return the rank of the kind of credential, the strongest highest."""
        return _STRENGTH[self.method.split(":", 1)[0]]


class _Secret(_Credential):
    """A plain or ``OBF:`` password, held as its UTF-8 bytes."""

    def __init__(self, secret: bytes, *, obfuscated: bool = False) -> None:
        self.secret = secret
        self.obfuscated = obfuscated

    def verify(self, password: str) -> bool:
        return hmac.compare_digest(_utf8(password), self.secret)


class _MD5(_Credential):
    """Jetty's ``MD5:`` credential."""

    method = "MD5"

    def __init__(self, digest: bytes) -> None:
        self.digest = digest

    def verify(self, password: str) -> bool:
        return hmac.compare_digest(_md5(password), self.digest)


class _WerkzeugHash(_Credential):
    """A salted ``scrypt`` or ``pbkdf2`` hash in Werkzeug's format."""

    slow = True

    def __init__(self, pwhash: str, method: str) -> None:
        self.pwhash = pwhash
        self.method = method

    def verify(self, password: str) -> bool:
        try:
            return check_password_hash(self.pwhash, password)
        except ValueError:
            # A password with lone surrogates cannot be encoded: no match.
            return False


def _parse_credential(text: str) -> _Credential:
    """Return the credential that the realm-file text ``text`` stands for.

    :raises ValueError: naming the form at fault, never echoing ``text``.
    """
    if text.startswith("OBF:"):
        password = deobfuscate(text)
        if not password:
            raise ValueError("Empty OBF: credential")
        return _Secret(_utf8(password), obfuscated=True)
    if text.startswith("MD5:"):
        if not _MD5_HEX.fullmatch(text[4:]):
            raise ValueError("An MD5: credential needs 32 hex digits")
        return _MD5(bytes.fromhex(text[4:]))
    if text.startswith("CRYPT:"):
        raise ValueError(
            "CRYPT: credentials are not supported (crypt(3) is gone from "
            "Python 3.13); store an scrypt hash (securityhandler hash-password)"
        )
    if _WERKZEUG_PREFIX.match(text):
        return _werkzeug_hash(text)
    if _SCHEME_LIKE.match(text):
        raise ValueError(
            "Credential starts with an unknown scheme; expected OBF:, MD5:, "
            "scrypt: or pbkdf2: (obfuscate a plain password that looks like one)"
        )
    return _Secret(_utf8(text))


def _werkzeug_hash(text: str) -> _Credential:
    match = _WERKZEUG.fullmatch(text)
    if match is None:
        raise ValueError("Malformed Werkzeug hash; expected method$salt$hexdigest")
    kind, arguments, _, _ = match.groups()
    args = arguments.split(":") if arguments else []
    method = _scrypt_method(args) if kind == "scrypt" else _pbkdf2_method(args)
    return _WerkzeugHash(text, method)


def _scrypt_method(args: list[str]) -> str:
    if not args:
        return "scrypt"
    if len(args) != 3 or not all(arg.isdigit() for arg in args):
        raise ValueError("An scrypt hash takes three numbers, scrypt:N:r:p")
    n, r, p = map(int, args)
    if n < 2 or n & (n - 1) or r < 1 or p < 1 or 132 * n * r * p > _MAX_SCRYPT_MEMORY:
        raise ValueError("Unusable scrypt parameters; N is a power of 2, r, p >= 1")
    return f"scrypt:{n}:{r}:{p}"


def _pbkdf2_method(args: list[str]) -> str:
    if len(args) > 2 or (len(args) == 2 and not args[1].isdigit()):
        raise ValueError("A pbkdf2 hash takes pbkdf2:digest:iterations")
    if len(args) == 2 and int(args[1]) < 1:
        raise ValueError("A pbkdf2 hash needs at least one iteration")
    if args:
        try:
            hashlib.pbkdf2_hmac(args[0], b"", b"salt", 1)
        except ValueError:
            raise ValueError("Unknown pbkdf2 digest") from None
    return ":".join(["pbkdf2", *args])


def _utf8(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")


def _md5(password: str) -> bytes:
    # Jetty hashes the ISO-8859-1 bytes; a password outside Latin-1 (which
    # Jetty would turn into "?"s) is hashed as UTF-8 instead.
    try:
        data = password.encode("latin-1")
    except UnicodeEncodeError:
        data = _utf8(password)
    return hashlib.md5(data).digest()  # noqa: S324 - Jetty's MD5: format


@dataclass(frozen=True)
class _Entry:
    """One user as read from the file or the inline users."""

    name: str
    credential: _Credential
    roles: frozenset[str]
    line: int | None = None


class _VerifiedCache:
    """Successful verifications, keyed by a MAC of user name and password.

    The key is keyed BLAKE2b (a MAC by design, RFC 7693) under a random
    per-process key, so the cache holds neither the password nor an unkeyed
    hash of it. BLAKE2b is used rather than HMAC-SHA256 because it is one
    call instead of two hash passes on every cached Basic request.
    """

    def __init__(self, key: bytes, clock: Callable[[], float]) -> None:
        self._key = key
        self._clock = clock
        self._expiry: dict[bytes, float] = {}
        self._lock = threading.Lock()

    def key(self, username: str, password: str) -> bytes:
        """Return the cache key of a user name and password."""
        name = _utf8(username)
        message = len(name).to_bytes(4, "big") + name + _utf8(password)
        return hashlib.blake2b(message, key=self._key, digest_size=32).digest()

    def hit(self, key: bytes) -> bool:
        """Tell whether ``key`` was verified less than :data:`CACHE_TTL` ago."""
        with self._lock:
            expiry = self._expiry.get(key)
            if expiry is None:
                return False
            if self._clock() < expiry:
                return True
            del self._expiry[key]
            return False

    def add(self, key: bytes) -> None:
        """Remember a successful verification of ``key``."""
        now = self._clock()
        with self._lock:
            if len(self._expiry) >= CACHE_SIZE:
                self._evict(now)
            self._expiry[key] = now + CACHE_TTL

    def _evict(self, now: float) -> None:
        for key in [k for k, expiry in self._expiry.items() if expiry <= now]:
            del self._expiry[key]
        while len(self._expiry) >= CACHE_SIZE:
            del self._expiry[next(iter(self._expiry))]


@dataclass(frozen=True)
class _User:
    credential: _Credential
    identity: UserIdentity


@dataclass(frozen=True)
class _Table:
    """One consistent generation of users, swapped whole on reload."""

    users: Mapping[str, _User]
    roles: frozenset[str]
    dummy: _Credential
    cache: _VerifiedCache


_Signature = tuple[int, int, int]


class HashLoginService:
    """Check user names and passwords against a realm file and inline users.

    Jetty's ``HashLoginService``: users come from a ``realm.properties``
    file (see the module documentation for the format and the credential
    forms) and from ``users``, the inline form of the YAML configuration::

        {"alice": {"password": "scrypt:...", "roles": ["admin"]}}

    A user may be defined in one place only. Plain-text passwords work but
    emit a :class:`~securityhandler.errors.SecurityWarning` per load that
    names the source and the users.

    The file is re-checked at most once per ``reload_interval`` seconds,
    when a login comes in: a change of its modification time, size or inode
    loads it whole and swaps the user table at once, so a request sees the
    old users or the new ones, never a mix. A new file that is broken or
    defines no users, and a deleted file, keep the old users and are
    logged. Replace the file atomically (write a copy, then rename it);
    a file rewritten in place can be read half-written.

    An unknown user costs the same work as a wrong password: the password
    is checked against a dummy credential of the strongest kind in use.

    Trade-off of the cache: an scrypt check takes tens of milliseconds, too
    slow to pay on every Basic request. Successful checks of scrypt and
    pbkdf2 hashes are therefore remembered for :data:`CACHE_TTL` seconds
    (at most :data:`CACHE_SIZE` of them), keyed by a keyed BLAKE2b MAC of user name
    and password under a random per-process key. The cache never holds the
    password, but someone who can read the process memory (key included)
    can test guesses against a cached entry at hashing speed instead of scrypt
    speed, for as long as it lives. Failures are never cached, and a
    reload drops the whole cache, so a changed password or role takes
    effect at once.

    :param name: the service name, the ``issuer`` of its identities.
    :param file: the realm file, if any.
    :param users: inline users: name to ``password`` and ``roles``.
    :param reload_interval: the least number of seconds between two checks
        of the file.
    :param clock: the time source of reload checks and the cache.
    :raises ConfigError: naming file, line and user of the first fault.
    """

    def __init__(
        self,
        name: str,
        file: str | os.PathLike[str] | None = None,
        users: Mapping[str, Mapping[str, Any]] | None = None,
        *,
        reload_interval: float = 1.0,
        clock: Callable[[], float] = now,
    ) -> None:
        if file is None and not users:
            raise ConfigError("A hash login service needs a file or users", key="users")
        if reload_interval < 0:
            raise ConfigError(
                "Expected a number of seconds >= 0", key="reload_interval"
            )
        self.name = name
        self.file = None if file is None else os.fspath(file)
        self.reload_interval = reload_interval
        self._clock = clock
        self._cache_key = secrets.token_bytes(32)
        self._inline = _parse_inline(users or {})
        _warn_plain("inline users", self._inline.values())
        self._reload_lock = threading.Lock()
        self._signature: _Signature | None = None
        entries: dict[str, _Entry] = {}
        if self.file is not None:
            self._signature, entries = _load_first(self.file)
        self._table = self._build(entries, self.file, None)
        if self.file is not None:
            _warn_plain(self.file, entries.values())
        self._next_check = clock() + reload_interval

    def login(self, username: str, password: str) -> UserIdentity | None:
        """Return the identity of ``username`` if ``password`` matches it."""
        table = self._current()
        user = table.users.get(username)
        if user is None:
            table.dummy.verify(password)
            return None
        credential = user.credential
        if not credential.slow:
            return user.identity if credential.verify(password) else None

        key = table.cache.key(username, password)
        if table.cache.hit(key):
            return user.identity
        if not credential.verify(password):
            return None
        table.cache.add(key)
        return user.identity

    def roles(self) -> frozenset[str]:
        """Return every role some user holds."""
        return self._current().roles

    def usernames(self) -> frozenset[str]:
        """Return the names of every user."""
        return frozenset(self._current().users)

    def _current(self) -> _Table:
        if self.file is not None and self._clock() >= self._next_check:
            self._check(self.file)
        return self._table

    def _check(self, path: str) -> None:
        # One thread checks; the others go on with the current table.
        if not self._reload_lock.acquire(blocking=False):
            return
        try:
            now = self._clock()
            if now >= self._next_check:
                self._next_check = now + self.reload_interval
                self._reload(path)
        finally:
            self._reload_lock.release()

    def _reload(self, path: str) -> None:
        try:
            stat = os.stat(path)
            if _signature(stat) == self._signature:
                return
            signature, data = _read(path)
        except OSError as exc:
            self._lost(path, exc)
            return
        try:
            entries = _parse_realm(path, data)
            table = self._build(entries, path, self._table.dummy)
            _warn_plain(path, entries.values())
        except (ConfigError, SecurityWarning) as exc:
            log.error("Realm file not reloaded, keeping the previous users: %s", exc)
        else:
            self._table = table
            log.info("Reloaded realm file %s: %d users", path, len(table.users))
        self._signature = signature

    def _lost(self, path: str, exc: OSError) -> None:
        if self._signature is None:
            return
        self._signature = None
        if isinstance(exc, FileNotFoundError):
            log.warning("Realm file %s is gone; keeping the previous users", path)
        else:
            log.error(
                "Cannot read realm file %s (%s); keeping the previous users",
                path,
                exc.strerror,
            )

    def _build(
        self,
        entries: Mapping[str, _Entry],
        path: str | None,
        dummy: _Credential | None,
    ) -> _Table:
        if path is not None and not entries:
            raise ConfigError("The realm file defines no users", file=path)
        for entry in entries.values():
            if entry.name in self._inline:
                raise ConfigError(
                    "User is defined both in the file and inline; keep one",
                    file=path,
                    line=entry.line,
                    key=entry.name,
                )
        merged = [*self._inline.values(), *entries.values()]
        users = {
            entry.name: _User(
                entry.credential,
                UserIdentity(entry.name, entry.roles, "BASIC", self.name),
            )
            for entry in merged
        }
        return _Table(
            users,
            frozenset().union(*(entry.roles for entry in merged)),
            _dummy((entry.credential for entry in merged), dummy),
            _VerifiedCache(self._cache_key, self._clock),
        )


def _load_first(path: str) -> tuple[_Signature, dict[str, _Entry]]:
    try:
        signature, data = _read(path)
    except OSError as exc:
        raise ConfigError(
            f"Cannot read the realm file: {exc.strerror}", file=path
        ) from exc
    return signature, _parse_realm(path, data)


def _dummy(
    credentials: Iterable[_Credential], previous: _Credential | None
) -> _Credential:
    """Return a credential no password matches, as costly as the strongest in use.

    Reuses ``previous`` when it is of the same method: a new scrypt dummy
    costs one scrypt computation.
    """
    method = _strongest_method(credentials)
    if previous is not None and previous.method == method:
        return previous
    secret = secrets.token_urlsafe(16)
    if method == "plain":
        return _Secret(_utf8(secret))
    if method == "MD5":
        return _MD5(_md5(secret))
    return _werkzeug_hash(generate_password_hash(secret, method))


def _strongest_method(credentials: Iterable[_Credential]) -> str:
    """Return the most common method of the strongest kind of credential."""
    items = list(credentials)
    if not items:
        return "plain"
    strongest = max(c.strength for c in items)
    counts = Counter(c.method for c in items if c.strength == strongest)
    return counts.most_common(1)[0][0]


def _parse_realm(path: str, data: bytes) -> dict[str, _Entry]:
    """Parse the bytes of a realm file into its users, by name.

    :param path: the file name, for error messages.
    :raises ConfigError: naming file, line and user of the first fault.
    """
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        bad_line = data[: exc.start].count(b"\n") + 1
        raise ConfigError(
            "The realm file is not UTF-8 text", file=path, line=bad_line
        ) from None
    entries: dict[str, _Entry] = {}
    for number, raw in enumerate(text.split("\n"), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        entry = _parse_line(path, number, line)
        first = entries.get(entry.name)
        if first is not None:
            raise ConfigError(
                f"Duplicate user; first defined on line {first.line}",
                file=path,
                line=number,
                key=entry.name,
            )
        entries[entry.name] = entry
    return entries


def _parse_line(path: str, number: int, line: str) -> _Entry:
    name, colon, rest = line.partition(":")
    name = name.strip()
    if not colon:
        # No key: without a colon the text may be a bare password.
        raise ConfigError(
            "Expected 'user: credential[, role ...]'", file=path, line=number
        )
    if not name:
        raise ConfigError("Empty user name before ':'", file=path, line=number)

    def fail(description: str) -> ConfigError:
        return ConfigError(description, file=path, line=number, key=name)

    if _BAD_NAME.search(name):
        raise fail("A user name may not hold spaces or control characters")
    credential_text, *roles = (item.strip() for item in rest.split(","))
    if not credential_text:
        raise fail("Empty credential; expected 'user: credential[, role ...]'")
    if not all(roles):
        raise fail("Empty role in the role list")
    try:
        credential = _parse_credential(credential_text)
    except ValueError as exc:
        raise fail(str(exc)) from None
    return _Entry(name, credential, frozenset(roles), number)


def _parse_inline(users: Mapping[str, Mapping[str, Any]]) -> dict[str, _Entry]:
    return {name: _parse_inline_user(name, spec) for name, spec in users.items()}


def _parse_inline_user(name: str, spec: Any) -> _Entry:
    key = f"users.{name}"
    if not isinstance(name, str) or not name or _BAD_NAME.search(name):
        raise ConfigError(
            "A user name must be non-empty, without spaces, colons or control "
            "characters",
            key=key,
        )
    if not isinstance(spec, Mapping):
        raise ConfigError("Expected a mapping with password and roles", key=key)
    for field in spec:
        if field not in _INLINE_KEYS:
            raise ConfigError(
                "Unknown key; expected password and roles", key=f"{key}.{field}"
            )
    password = spec.get("password")
    if not isinstance(password, str) or not password:
        raise ConfigError("Expected a credential string", key=f"{key}.password")
    try:
        credential = _parse_credential(password)
    except ValueError as exc:
        raise ConfigError(str(exc), key=f"{key}.password") from None
    return _Entry(name, credential, _inline_roles(spec.get("roles", []), key))


def _inline_roles(roles: Any, key: str) -> frozenset[str]:
    if isinstance(roles, str) or not isinstance(roles, Iterable):
        raise ConfigError("Expected a list of role names", key=f"{key}.roles")
    items = list(roles)
    if not all(isinstance(r, str) and r and r == r.strip() for r in items):
        raise ConfigError(
            "Expected role names without surrounding spaces", key=f"{key}.roles"
        )
    return frozenset(items)


def _warn_plain(source: str, entries: Iterable[_Entry]) -> None:
    names = sorted(
        e.name
        for e in entries
        if isinstance(e.credential, _Secret) and not e.credential.obfuscated
    )
    if names:
        warnings.warn(
            f"{source}: plain-text password for user {', '.join(names)}; store "
            f"an scrypt hash instead (securityhandler hash-password)",
            SecurityWarning,
            stacklevel=3,
        )


def _read(path: str) -> tuple[_Signature, bytes]:
    with open(path, "rb") as stream:
        stat = os.fstat(stream.fileno())
        return _signature(stat), stream.read()


def _signature(stat: os.stat_result) -> _Signature:
    return (stat.st_mtime_ns, stat.st_size, stat.st_ino)
