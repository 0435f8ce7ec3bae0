"""The exception tree and the warning category.

Every exception carries a short machine ``error`` code and a human
``description``. A rejected credential is not an exception: authenticators
return an :class:`~securityhandler.authentication.AuthenticationState`. These
exceptions are for broken engines and broken configuration, where the handler
answers 500 (or 503) and never calls the application.
"""

from __future__ import annotations


class SecurityHandlerError(Exception):
    """Root of every error raised by securityhandler.

    :param description: what went wrong, for a human reader.
    """

    error = "securityhandler_error"

    def __init__(self, description: str = "") -> None:
        super().__init__(description or self.error)
        self.description = description


class ConfigError(SecurityHandlerError):
    """Reject a configuration, naming where the fault is.

    :param description: what was found and what was expected.
    :param file: the configuration file, if the config came from one.
    :param line: the 1-based line in that file, if known.
    :param key: the dotted path of the key at fault, for example
        ``constraints[2].roles``.
    """

    error = "invalid_config"

    def __init__(
        self,
        description: str,
        *,
        file: str | None = None,
        line: int | None = None,
        key: str | None = None,
    ) -> None:
        self.file = file
        self.line = line
        self.key = key
        super().__init__(description)

    def __str__(self) -> str:
        where = []
        if self.file is not None:
            where.append(self.file if self.line is None else f"{self.file}:{self.line}")
        elif self.line is not None:
            where.append(f"line {self.line}")
        if self.key:
            where.append(self.key)
        prefix = ": ".join(where)
        return f"{prefix}: {self.description}" if prefix else self.description


class PathSpecError(ConfigError):
    """Reject a path spec that is not one of the supported forms."""

    error = "invalid_path_spec"


class KeysUnavailableError(SecurityHandlerError):
    """No verification keys are at hand for an issuer and none are cached.

    :param retry_after: seconds after which a retry may succeed.
    """

    error = "keys_unavailable"

    def __init__(self, description: str, retry_after: int = 30) -> None:
        super().__init__(description)
        self.retry_after = retry_after


class SecurityWarning(UserWarning):
    """Warn about a setting that works but weakens security."""
