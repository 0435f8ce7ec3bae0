"""The demo behind ``securityhandler demo``: the Flask example, shipped.

``app.py``, ``security.yaml`` and ``realm.properties`` here are the Flask
example: ``examples/flask_app/`` links to them, so the demo works from an
installed package. The demo adds a local token issuer to them
(:mod:`.issuer`); this module holds what the banner prints.
"""

from __future__ import annotations

import datetime
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from .issuer import PACKAGED, TOKEN_NOTES, DemoTokens

#: The demo users: name, password, roles. Demo only: the realm file holds
#: their hashes, and these passwords are printed for anyone to try.
USERS = (
    ("alice", "wonderland", ("admin", "writer")),
    ("bob", "builder", ("reader",)),
)

_PASSWORDS = {name: password for name, password, _ in USERS}

#: The body of the order the POST requests send (the view wants JSON).
ORDER = '{"item": "tea"}'


@dataclass(frozen=True)
class DemoRequest:
    """A request the banner suggests, with the status the rules give it.

    :param status: the status ``security.yaml`` leads to.
    :param note: why that status.
    :param method: the HTTP method.
    :param path: the request target.
    :param user: the demo user whose password is sent (Basic), if any.
    :param bearer: the shell variable holding the bearer token sent, if any.
    :param body: a JSON body.
    """

    status: int
    note: str
    method: str
    path: str
    user: str | None = None
    bearer: str | None = None
    body: str | None = None

    def curl(self, base_url: str, cacert: Path) -> str:
        """Return the curl command line for this request.

        :param base_url: ``https://127.0.0.1:PORT``.
        :param cacert: the certificate curl is to trust for that server.
        """
        words = ["curl", "-i", "--cacert", shlex.quote(str(cacert))]
        if self.user is not None:
            words += ["-u", shlex.quote(f"{self.user}:{_PASSWORDS[self.user]}")]
        if self.bearer is not None:
            # Double quotes, so that the shell puts the token in.
            words += ["-H", f'"Authorization: Bearer ${self.bearer}"']
        if self.body is not None:
            words += ["-H", shlex.quote("Content-Type: application/json")]
            words += ["-d", shlex.quote(self.body)]
        if self.method != ("POST" if self.body is not None else "GET"):
            words += ["-X", self.method]
        words.append(shlex.quote(base_url + self.path))
        return " ".join(words)

    def explain(self, base_url: str, config: Path) -> str:
        """Return the ``securityhandler explain`` line for this request.

        It sends the same credential: the token, or the password on stdin.

        :param config: the demo's effective configuration.
        """
        words = ["securityhandler", "explain", str(config), self.method]
        line = shlex.join([*words, base_url + self.path])
        if self.bearer is not None:
            return f'{line} --token "${self.bearer}"'
        if self.user is not None:
            password = shlex.quote(_PASSWORDS[self.user])
            user = shlex.quote(self.user)
            return f"echo {password} | {line} --user {user} --password-stdin"
        return line


REQUESTS = (
    DemoRequest(200, "the public page: anyone, no credential", "GET", "/"),
    DemoRequest(
        200,
        "the writer's token: /api/* answers GET to any signed-in user",
        "GET",
        "/api/orders",
        bearer="WRITER",
    ),
    DemoRequest(
        200,
        "alice's password: /admin/* needs role admin, which alice has",
        "GET",
        "/admin/",
        user="alice",
    ),
    DemoRequest(
        401,
        "no credential: one challenge for Basic, one for Bearer",
        "GET",
        "/api/orders",
    ),
    DemoRequest(
        401,
        "an expired token: its exp passed an hour ago",
        "GET",
        "/api/orders",
        bearer="EXPIRED",
    ),
    DemoRequest(
        401,
        "a tampered token: READER claiming role writer; the signature fails",
        "POST",
        "/api/orders",
        bearer="TAMPERED",
        body=ORDER,
    ),
    DemoRequest(
        403,
        "the reader's token POSTs an order: that needs role writer ($WRITER gets 201)",
        "POST",
        "/api/orders",
        bearer="READER",
        body=ORDER,
    ),
    DemoRequest(
        403,
        "bob's password: /admin/* needs role admin; bob has reader",
        "GET",
        "/admin/",
        user="bob",
    ),
)

#: The heading of each group of requests, by status.
STATUS_TITLES: Mapping[int, str] = {
    200: "200 OK: the application answers",
    401: "401 Unauthorized: no credential, or one that does not verify",
    403: "403 Forbidden: signed in, but without the role the rule needs",
}


@dataclass(frozen=True)
class Setup:
    """What the demo made at start, for the banner to name.

    :param base_url: ``https://127.0.0.1:PORT``, where the example answers.
    :param cacert: the server's self-signed certificate, which clients trust.
    :param config: the effective configuration the example runs with.
    :param issuer: the local issuer's URL.
    :param audience: the audience of its tokens.
    :param tokens: the tokens it minted.
    """

    base_url: str
    cacert: Path
    config: Path
    issuer: str
    audience: str
    tokens: DemoTokens


def banner(setup: Setup) -> str:
    """Return the text printed when the demo is ready."""
    users = ", ".join(
        f"{name} / {password} ({', '.join(roles)})" for name, password, roles in USERS
    )
    lines = [
        f"securityhandler demo: the Flask example at {setup.base_url}",
        f"Rules:  {setup.config}",
        f"        ({PACKAGED} plus the local issuer)",
        f"TLS:    self-signed for 127.0.0.1 and localhost, valid 1 day: {setup.cacert}",
        f"Issuer: 'demo' at {setup.issuer}, keys at /jwks, audience "
        f"{setup.audience}, roles from claim 'roles'",
        f"Users:  {users}",
        "",
        *_token_lines(setup.tokens),
        "",
        "Each case: what curl gets, then the explain line that tells why "
        "(exit 0: allowed, 1: denied).",
        *_case_lines(setup),
        "",
        "Press Ctrl-C to stop.",
    ]
    return "\n".join(lines)


def _token_lines(tokens: DemoTokens) -> list[str]:
    until = datetime.datetime.fromtimestamp(tokens.expires, datetime.timezone.utc)
    lines = [
        f"Tokens from the local issuer, valid until {until:%Y-%m-%d %H:%M} UTC. "
        "Paste these lines into your shell first:"
    ]
    for name, token in tokens.tokens.items():
        lines += [f"  # {name}: {TOKEN_NOTES[name]}", f"  export {name}={token}"]
    return lines


def _case_lines(setup: Setup) -> list[str]:
    lines = []
    for status, title in STATUS_TITLES.items():
        lines += ["", title]
        for request in REQUESTS:
            if request.status == status:
                lines += [
                    f"  # {request.note}",
                    f"  {request.curl(setup.base_url, setup.cacert)}",
                    f"  {request.explain(setup.base_url, setup.config)}",
                ]
    return lines
