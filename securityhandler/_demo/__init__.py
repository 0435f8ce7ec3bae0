"""The demo behind ``securityhandler demo``: the Flask example, shipped.

``app.py``, ``security.yaml`` and ``realm.properties`` here are the Flask
example: ``examples/flask_app/`` links to them, so the demo works from an
installed package. This module holds what the banner prints.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path

#: The demo users: name, password, roles. Demo only: the realm file holds
#: their hashes, and these passwords are printed for anyone to try.
USERS = (
    ("alice", "wonderland", ("admin", "writer")),
    ("bob", "builder", ("reader",)),
)

_PASSWORDS = {name: password for name, password, _ in USERS}


@dataclass(frozen=True)
class DemoRequest:
    """A request the banner suggests, with the status the rules give it.

    :param method: the HTTP method.
    :param path: the request target.
    :param user: the demo user whose credentials are sent, if any.
    :param status: the status ``security.yaml`` leads to.
    :param note: why that status.
    """

    method: str
    path: str
    user: str | None
    status: int
    note: str

    def curl(self, base_url: str, cacert: Path) -> str:
        """Return the curl command line for this request.

        :param base_url: ``https://127.0.0.1:PORT``.
        :param cacert: the certificate curl is to trust for that server.
        """
        words = ["curl", "-i", "--cacert", str(cacert)]
        if self.method != "GET":
            words += ["-X", self.method]
        if self.user is not None:
            words += ["-u", f"{self.user}:{_PASSWORDS[self.user]}"]
        words.append(base_url + self.path)
        return shlex.join(words)


REQUESTS = (
    DemoRequest("GET", "/", None, 200, "public page"),
    DemoRequest("GET", "/api/orders", None, 401, "no credentials"),
    DemoRequest("GET", "/api/orders", "alice", 200, "any signed-in user"),
    DemoRequest("GET", "/admin/", "bob", 403, "bob lacks role admin"),
    DemoRequest("GET", "/admin/", "alice", 200, "alice holds role admin"),
)


def banner(base_url: str, cacert: Path) -> str:
    """Return the text printed when the demo is ready at ``base_url``.

    :param cacert: the server's self-signed certificate, which clients trust.
    """
    users = ", ".join(
        f"{name} / {password} ({', '.join(roles)})" for name, password, roles in USERS
    )
    commands = [request.curl(base_url, cacert) for request in REQUESTS]
    width = max(len(command) for command in commands)
    lines = [
        f"securityhandler demo: the Flask example at {base_url}",
        f"Rules: {Path(__file__).with_name('security.yaml')}",
        f"TLS: self-signed for 127.0.0.1 and localhost, valid 1 day: {cacert}",
        f"Demo users: {users}.",
        "Try:",
        *(
            f"  {command:<{width}}  # expect {request.status}: {request.note}"
            for command, request in zip(commands, REQUESTS, strict=True)
        ),
        "Press Ctrl-C to stop.",
    ]
    return "\n".join(lines)
