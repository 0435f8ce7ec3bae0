"""Configuration: the YAML schema of DESIGN section 5, or the same in Python."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .authentication import Authenticator
from .constraints import ConstraintMapping
from .handler import ConstraintSecurityHandler, ProxyConfig
from .login import LoginService

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication


@dataclass
class SecurityConfig:
    """Everything a handler needs, built in Python or read from YAML.

    :param mappings: the constraint mappings.
    :param authenticators: the authenticator chain, in order.
    :param login_services: the user stores, by name.
    :param source: the file the config was read from, if any.
    """

    mappings: list[ConstraintMapping] = field(default_factory=list)
    authenticators: list[Authenticator] = field(default_factory=list)
    realm: str = "securityhandler"
    known_roles: frozenset[str] | None = None
    deny_uncovered_methods: bool = True
    enforce: bool = True
    secure_port: int = 0
    proxy: ProxyConfig | None = None
    login_services: dict[str, LoginService] = field(default_factory=dict)
    source: str | None = None

    def build(self, app: WSGIApplication) -> ConstraintSecurityHandler:
        """Wrap ``app`` in a handler with this configuration."""
        return ConstraintSecurityHandler(
            app,
            self.mappings,
            self.authenticators,
            realm=self.realm,
            known_roles=self.known_roles,
            deny_uncovered_methods=self.deny_uncovered_methods,
            enforce=self.enforce,
            secure_port=self.secure_port,
            proxy=self.proxy,
        )


def load_config(source: str | os.PathLike[str] | Mapping[str, Any]) -> SecurityConfig:
    """Read a configuration from a YAML file or a mapping of the same schema."""
    raise NotImplementedError


def secure(
    app: WSGIApplication,
    config: str | os.PathLike[str] | Mapping[str, Any] | SecurityConfig,
) -> ConstraintSecurityHandler:
    """Wrap a WSGI application in a :class:`ConstraintSecurityHandler`.

    :param app: the application (Flask's ``app.wsgi_app``, Django's
        ``get_wsgi_application()``).
    :param config: a YAML file path, a mapping with the same schema, or a
        :class:`SecurityConfig` built in Python.
    :raises ConfigError: naming file, line and key of the first fault.
    """
    if not isinstance(config, SecurityConfig):
        config = load_config(config)
    return config.build(app)
