"""Test kit: a local token issuer, minted tokens and pytest fixtures.

An application's own tests can exercise its bearer-token constraints with
no cloud account and no network beyond loopback. :class:`LocalIssuer`
generates signing keys, serves its JWKS and an OpenID discovery document
on a loopback HTTP server in a thread, and mints tokens::

    from securityhandler.testing import LocalIssuer

    with LocalIssuer(audience="https://orders.example.test") as issuer:
        bearer = BearerAuthenticator(issuer.login_service(role_claims=["roles"]))
        handler = ConstraintSecurityHandler(app, mappings, [bearer])
        token = issuer.mint(sub="alice", roles=["admin"])
        # Authorization: Bearer <token>

``mint(**claims)`` fills in ``iss``, ``aud``, ``sub``, ``iat`` and ``exp``
(five minutes) from the issuer and its clock; a claim given as ``None`` is
left out, so ``mint(exp=None)`` makes a token without expiry. ``headers=``
changes the JOSE header the same way, and :meth:`LocalIssuer.sign` signs
any header and payload bytes, for tokens no well-behaved issuer would make.

The issuer can be driven like a real one while the service runs:
:meth:`~LocalIssuer.rotate` (a new key signs, the old one stays published),
:meth:`~LocalIssuer.retire` (unpublish a key), :meth:`~LocalIssuer.down` and
:meth:`~LocalIssuer.up` (the endpoints answer 503), ``cache_control`` (the
``Cache-Control`` of the JWKS), ``redirect_to`` (the JWKS answers 302 there),
:meth:`~LocalIssuer.pause` / :meth:`~LocalIssuer.resume` (hold JWKS answers),
``extra_keys`` (raw JWKs published as they are). ``jwks_fetches`` and
``discovery_fetches`` count the requests, and
:meth:`~LocalIssuer.wait_for_fetches` waits for them without sleeping.

pytest plugin
-------------

Installed with securityhandler (entry point ``securityhandler.testing``; or
``pytest_plugins = ["securityhandler.testing"]`` in a ``conftest.py``), it
provides two fixtures:

- ``local_issuer``: a started :class:`LocalIssuer`, stopped after the test;
- ``mint_token``: its :meth:`~LocalIssuer.mint`.

Keys are generated once per process and lent to issuers (never to two live
issuers at once), so a test suite does not pay an RSA key generation per
test. Test-only: the server speaks plain HTTP and listens on loopback only.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from joserfc.jwk import ECKey, OKPKey, RSAKey
from joserfc.jws import JWSRegistry
from joserfc.util import urlsafe_b64encode

from ._clock import now
from .jwks import is_loopback
from .tokens import TokenIssuer, TokenLoginService

__all__ = ["LocalIssuer"]

PrivateKey = RSAKey | ECKey | OKPKey

#: The kind of key each algorithm signs with.
_KEY_KINDS: Mapping[str, str] = {
    "RS256": "RSA",
    "RS384": "RSA",
    "RS512": "RSA",
    "PS256": "RSA",
    "PS384": "RSA",
    "PS512": "RSA",
    "ES256": "P-256",
    "ES384": "P-384",
    "ES512": "P-521",
    "EdDSA": "Ed25519",
    "Ed25519": "Ed25519",
}

DEFAULT_AUDIENCE = "https://service.example.test"
DEFAULT_SUBJECT = "test-user"


class _KeyPool:
    """Private keys generated once per process, lent to one issuer at a time."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._free: dict[str, list[PrivateKey]] = {}

    def take(self, kind: str) -> PrivateKey:
        with self._lock:
            free = self._free.get(kind)
            if free:
                return free.pop()
        return _generate(kind)

    def give(self, kind: str, key: PrivateKey) -> None:
        with self._lock:
            self._free.setdefault(kind, []).append(key)


def _generate(kind: str) -> PrivateKey:
    key: PrivateKey
    if kind == "RSA":
        key = RSAKey.generate_key(2048, auto_kid=True)
    elif kind == "Ed25519":
        key = OKPKey.generate_key("Ed25519", auto_kid=True)
    else:
        key = ECKey.generate_key(kind, auto_kid=True)
    return key


_POOL = _KeyPool()


@dataclass(frozen=True)
class _SigningKey:
    kid: str
    algorithm: str
    key: PrivateKey

    def public_jwk(self) -> dict[str, Any]:
        jwk = dict(self.key.as_dict(private=False))
        jwk.update(kid=self.kid, alg=self.algorithm, use="sig")
        return jwk


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:
        self.server.issuer.answer(self)

    def log_message(self, format: str, *args: Any) -> None:
        """Keep test output quiet."""


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], issuer: LocalIssuer) -> None:
        self.issuer = issuer
        super().__init__(address, _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Stay quiet when a client gave up (a fetch that timed out)."""


def _jsonable(value: Mapping[str, Any] | bytes | str) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("utf-8")
    return json.dumps(value, separators=(",", ":")).encode("utf-8")


class LocalIssuer:
    """A token issuer on loopback: keys, JWKS, discovery, minted tokens.

    :param audience: the default ``aud`` of minted tokens and of
        :meth:`token_issuer`.
    :param algorithm: the signing algorithm of the first key (``RS256``:
        RSA-2048; ``ES256``: P-256; ``EdDSA``: Ed25519; and the like).
    :param host: a loopback address to listen on.
    :param port: the port, ``0`` for a free one.
    :param lifetime: seconds from ``iat`` to ``exp`` of minted tokens.
    :param clock: the time for ``iat``/``exp``, ``time.time`` by default
        (read at each call, so freezegun applies).
    """

    def __init__(
        self,
        *,
        audience: str = DEFAULT_AUDIENCE,
        algorithm: str = "RS256",
        host: str = "127.0.0.1",
        port: int = 0,
        lifetime: int = 300,
        clock: Callable[[], float] | None = None,
    ) -> None:
        if not is_loopback(host):
            raise ValueError(f"LocalIssuer listens on loopback only, not {host!r}")
        self.audience = audience
        self.lifetime = lifetime
        self.clock: Callable[[], float] = clock or now
        self.host = host
        self.port = port
        #: ``Cache-Control`` of the JWKS answer; ``None`` sends none.
        self.cache_control: str | None = None
        #: When set, the JWKS answers ``302`` to this URL.
        self.redirect_to: str | None = None
        #: The ``issuer`` of the discovery document; ``None``: the real one.
        self.discovery_issuer: str | None = None
        #: Raw JWKs published after the issuer's own keys, as they are.
        self.extra_keys: list[dict[str, Any]] = []
        self.jwks_fetches = 0
        self.discovery_fetches = 0
        self._available = True
        self._released = threading.Event()
        self._released.set()
        self._fetched = threading.Condition()
        self._lock = threading.Lock()
        self._keys: list[_SigningKey] = []
        self._lent: list[tuple[str, PrivateKey]] = []
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self.add_key(algorithm, signing=True)

    # --- lifecycle -------------------------------------------------------------

    def start(self) -> LocalIssuer:
        """Start serving; return ``self``."""
        if self._server is not None:
            return self
        server = _Server((self.host, self.port), self)
        self.port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"LocalIssuer:{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and give the keys back to the pool."""
        self._released.set()
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is not None:
            server.shutdown()
            server.server_close()
        if thread is not None:
            thread.join()
        lent, self._lent = self._lent, []
        for kind, key in lent:
            _POOL.give(kind, key)

    def __enter__(self) -> LocalIssuer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # --- addresses -------------------------------------------------------------

    @property
    def issuer(self) -> str:
        """Return the issuer URL, the ``iss`` of minted tokens."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def jwks_uri(self) -> str:
        """Return the URL of the JWKS."""
        return self.issuer + "/jwks"

    @property
    def discovery_uri(self) -> str:
        """Return the URL of the OpenID discovery document."""
        return self.issuer + "/.well-known/openid-configuration"

    # --- keys ------------------------------------------------------------------

    @property
    def kid(self) -> str:
        """Return the key id of the key that signs by default."""
        return self._key(None).kid

    @property
    def kids(self) -> list[str]:
        """Return the key ids published, signing key first."""
        return [key.kid for key in self._keys]

    def add_key(self, algorithm: str = "RS256", *, signing: bool = False) -> str:
        """Publish a new key for ``algorithm``; return its ``kid``.

        :param signing: make it the key that signs by default.
        """
        kind = _KEY_KINDS.get(algorithm)
        if kind is None:
            raise ValueError(f"Unsupported algorithm {algorithm!r}")
        key = _POOL.take(kind)
        self._lent.append((kind, key))
        entry = _SigningKey(str(key.kid), algorithm, key)
        with self._lock:
            if signing:
                self._keys.insert(0, entry)
            else:
                self._keys.append(entry)
        return entry.kid

    def rotate(self, algorithm: str | None = None) -> str:
        """Sign with a new key from now on, keeping the old ones published.

        :param algorithm: of the new key; the current one's by default.
        :return: the new ``kid``.
        """
        return self.add_key(algorithm or self._key(None).algorithm, signing=True)

    def retire(self, kid: str | None = None) -> None:
        """Unpublish ``kid``, or every key but the signing one.

        Retiring the last key leaves an issuer that publishes no key of its
        own (only ``extra_keys``) and can no longer mint.
        """
        with self._lock:
            signing = self._keys[0] if self._keys else None
            self._keys = [
                key
                for key in self._keys
                if (key.kid != kid if kid is not None else key is signing)
            ]

    def jwks(self) -> dict[str, Any]:
        """Return the JWKS document as served."""
        with self._lock:
            keys = [key.public_jwk() for key in self._keys]
        return {"keys": keys + list(self.extra_keys)}

    def public_jwk(self, kid: str | None = None) -> dict[str, Any]:
        """Return the public JWK of ``kid`` (the signing key by default)."""
        return dict(self._key(kid).public_jwk())

    def private_jwk(self, kid: str | None = None) -> dict[str, Any]:
        """Return the JWK of ``kid`` with its private members."""
        key = self._key(kid)
        jwk = dict(key.key.as_dict(private=True))
        jwk.update(kid=key.kid, alg=key.algorithm)
        return jwk

    def _key(self, kid: str | None) -> _SigningKey:
        with self._lock:
            for key in self._keys:
                if kid is None or key.kid == kid:
                    return key
        raise KeyError(f"No key {kid!r}")

    # --- availability ----------------------------------------------------------

    def down(self) -> None:
        """Answer 503 on the JWKS and discovery endpoints."""
        self._available = False

    def up(self) -> None:
        """Answer normally again."""
        self._available = True

    def pause(self) -> None:
        """Hold every JWKS answer until :meth:`resume` (requests still count)."""
        self._released.clear()

    def resume(self) -> None:
        """Let held JWKS answers go."""
        self._released.set()

    def wait_for_fetches(self, count: int, timeout: float = 10.0) -> bool:
        """Wait until ``jwks_fetches`` reaches ``count``; tell whether it did."""
        with self._fetched:
            return self._fetched.wait_for(lambda: self.jwks_fetches >= count, timeout)

    # --- tokens ----------------------------------------------------------------

    def mint(
        self,
        claims: Mapping[str, Any] | None = None,
        /,
        *,
        headers: Mapping[str, Any] | None = None,
        kid: str | None = None,
        **more: Any,
    ) -> str:
        """Return a signed token with sane defaults and the given claims.

        Defaults: ``iss`` this issuer, ``aud`` its audience, ``sub``
        ``test-user``, ``iat`` now and ``exp`` now plus ``lifetime``. A
        claim or header given as ``None`` is left out.

        :param claims: claims as a mapping (for names that are not
            identifiers); ``**more`` adds to them.
        :param headers: changes to the header (``alg``, ``kid``, ``typ``).
        :param kid: the key to sign with; the signing key by default.
        """
        key = self._key(kid)
        now = int(self.clock())
        payload: dict[str, Any] = {
            "iss": self.issuer,
            "aud": self.audience,
            "sub": DEFAULT_SUBJECT,
            "iat": now,
            "exp": now + self.lifetime,
        }
        payload.update(claims or {})
        payload.update(more)
        header: dict[str, Any] = {"alg": key.algorithm, "typ": "JWT", "kid": key.kid}
        header.update(headers or {})
        return self.sign(
            {k: v for k, v in header.items() if v is not None},
            {k: v for k, v in payload.items() if v is not None},
            kid=key.kid,
        )

    def sign(
        self,
        header: Mapping[str, Any] | bytes | str,
        payload: Mapping[str, Any] | bytes | str,
        *,
        kid: str | None = None,
    ) -> str:
        """Sign a header and payload as given, raw bytes included.

        The key's own algorithm signs, whatever the header says.
        """
        key = self._key(kid)
        signing_input = (
            urlsafe_b64encode(_jsonable(header))
            + b"."
            + urlsafe_b64encode(_jsonable(payload))
        )
        signature = JWSRegistry.algorithms[key.algorithm].sign(signing_input, key.key)
        return (signing_input + b"." + urlsafe_b64encode(signature)).decode("ascii")

    def token_issuer(self, name: str = "local", **options: Any) -> TokenIssuer:
        """Return a :class:`TokenIssuer` for this issuer.

        ``jwks_uri`` defaults to this issuer's JWKS; pass ``jwks_uri=None``
        to go through discovery. Other options are passed on.
        """
        options.setdefault("issuer", self.issuer)
        options.setdefault("audiences", [self.audience])
        options.setdefault("jwks_uri", self.jwks_uri)
        return TokenIssuer(name, **options)

    def login_service(
        self,
        name: str = "local",
        *,
        clock: Callable[[], float] | None = None,
        **options: Any,
    ) -> TokenLoginService:
        """Return a :class:`TokenLoginService` trusting this issuer only."""
        return TokenLoginService(
            name, [self.token_issuer(name, **options)], clock=clock
        )

    # --- HTTP ------------------------------------------------------------------

    def answer(self, request: BaseHTTPRequestHandler) -> None:
        """Answer one GET of the loopback server."""
        path = request.path.split("?", 1)[0]
        if path == "/jwks":
            self._count_jwks()
            self._released.wait(timeout=30)
            self._answer_jwks(request)
        elif path == "/.well-known/openid-configuration":
            with self._fetched:
                self.discovery_fetches += 1
            self._answer_discovery(request)
        else:
            _send(request, 404, b"{}")

    def _count_jwks(self) -> None:
        with self._fetched:
            self.jwks_fetches += 1
            self._fetched.notify_all()

    def _answer_jwks(self, request: BaseHTTPRequestHandler) -> None:
        if not self._available:
            _send(request, 503, b"{}")
        elif self.redirect_to:
            _send(request, 302, b"", [("Location", self.redirect_to)])
        else:
            headers = []
            if self.cache_control is not None:
                headers.append(("Cache-Control", self.cache_control))
            _send(request, 200, _jsonable(self.jwks()), headers)

    def _answer_discovery(self, request: BaseHTTPRequestHandler) -> None:
        if not self._available:
            _send(request, 503, b"{}")
            return
        document = {
            "issuer": self.discovery_issuer or self.issuer,
            "jwks_uri": self.jwks_uri,
            "id_token_signing_alg_values_supported": sorted(
                {key.algorithm for key in self._keys}
            ),
        }
        _send(request, 200, _jsonable(document))


def _send(
    request: BaseHTTPRequestHandler,
    status: int,
    body: bytes,
    headers: Sequence[tuple[str, str]] = (),
) -> None:
    request.send_response(status)
    request.send_header("Content-Type", "application/json")
    request.send_header("Content-Length", str(len(body)))
    for name, value in headers:
        request.send_header(name, value)
    request.end_headers()
    request.wfile.write(body)


try:
    import pytest
except ImportError:  # pragma: no cover - the kit works without pytest
    pass
else:

    @pytest.fixture
    def local_issuer() -> Iterator[LocalIssuer]:
        """Yield a started :class:`LocalIssuer`; stop it after the test."""
        with LocalIssuer() as issuer:
            yield issuer

    @pytest.fixture
    def mint_token(local_issuer: LocalIssuer) -> Callable[..., str]:
        """Return ``local_issuer.mint``: ``mint_token(sub="alice", roles=[...])``."""
        return local_issuer.mint
