"""Login services: turn a user name and password into a :class:`UserIdentity`."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from .identity import UserIdentity


@runtime_checkable
class LoginService(Protocol):
    """A store of users that checks passwords, like Jetty's ``LoginService``."""

    #: The name used in configuration and in audit records.
    name: str

    def login(self, username: str, password: str) -> UserIdentity | None:
        """Return the identity for a correct password, else ``None``.

        Unknown users and wrong passwords must cost the same time.
        """
        ...

    def roles(self) -> frozenset[str]:
        """Return every role some user of this service holds."""
        ...
