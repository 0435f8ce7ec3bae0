"""Configuration: the YAML schema of DESIGN section 5, or the same in Python.

:func:`load_config` reads a YAML file, or a mapping with the same schema,
into a :class:`SecurityConfig`. YAML is read with PyYAML's safe loader at the
node level, so every value keeps its line, and every fault is a
:class:`~securityhandler.errors.ConfigError` naming the file, the line, the
dotted key (``constraints[2].roles``, indexes from 0) and what was expected.

``${NAME}`` in a string value is replaced from the environment, and ``$${``
writes a literal ``${``. A value read from the environment is never echoed in
an error message, since it may be a secret.

Each top-level section is built by one function listed in ``_SECTIONS``, each
authenticator type by one in ``_AUTHENTICATORS`` and each login service type
by one in ``_LOGIN_SERVICES``: adding one is a function plus a table entry.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

import yaml

from .authentication import Authenticator, BasicAuthenticator
from .bearer import BearerAuthenticator, IapAuthenticator
from .constraints import (
    _TOKEN_CHARS,
    Authorization,
    Constraint,
    ConstraintMapping,
    Transport,
)
from .errors import ConfigError, PathSpecError
from .handler import ConstraintSecurityHandler, ProxyConfig
from .login import LoginService
from .pathspec import PathSpec
from .realm import HashLoginService
from .tokens import PRESETS, TokenIssuer, TokenLoginService

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication

T = TypeVar("T")

#: Most values one configuration may hold once YAML aliases are expanded.
_MAX_VALUES = 100_000
_INTERPOLATION = re.compile(r"\$\$\{|\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$\{")
_YAML_MAP = "tag:yaml.org,2002:map"
_YAML_SEQ = "tag:yaml.org,2002:seq"
_YAML_MERGE = "tag:yaml.org,2002:merge"


@dataclass
class SecurityConfig:
    """Everything a handler needs, built in Python or read from YAML.

    :param mappings: the constraint mappings; when read from a file,
        ``mappings[i]`` comes from ``constraints[i]``.
    :param authenticators: the authenticator chain, in order.
    :param realm: the realm named in challenges.
    :param known_roles: what ``known-role`` accepts; ``None`` means every
        role named by a constraint.
    :param deny_uncovered_methods: answer 403 to uncovered methods.
    :param enforce: ``False`` decides and logs but never blocks.
    :param secure_port: the HTTPS port to redirect to; ``0`` answers 403.
    :param proxy: the forwarded headers to trust.
    :param login_services: the user stores, by name.
    :param issuers: the token issuers, by name.
    :param source: the file the config was read from, if any.
    :param lines: the 1-based line of every dotted key read from a file,
        such as ``constraints[2]`` or ``constraints[2].roles``; empty for a
        config built in Python or from a mapping.
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
    issuers: dict[str, TokenIssuer] = field(default_factory=dict)
    source: str | None = None
    lines: dict[str, int] = field(default_factory=dict)

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

    def constraint_line(self, mapping: ConstraintMapping) -> int | None:
        """Return the line of the ``constraints`` entry that built ``mapping``.

        :param mapping: one of :attr:`mappings` (compared by identity).
        :return: ``None`` if the config was not read from a file.
        """
        for index, candidate in enumerate(self.mappings):
            if candidate is mapping:
                return self.lines.get(f"constraints[{index}]")
        return None


def load_config(source: str | os.PathLike[str] | Mapping[str, Any]) -> SecurityConfig:
    """Read a configuration from a YAML file or a mapping of the same schema.

    :param source: a path to a YAML file, or a mapping (then errors carry
        ``file=None`` and ``line=None``, and relative realm files resolve
        against the working directory).
    :raises ConfigError: naming file, line and key of the first fault.
    """
    if isinstance(source, Mapping):
        root = _from_python(source, "")
        return _Loader(None).load(root)

    path = os.fspath(source)
    reader = _YamlReader(path)
    root = reader.read()
    config = _Loader(os.path.dirname(os.path.abspath(path))).load(root)
    config.source = path
    config.lines = reader.lines
    return config


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


# -- Values with their place ------------------------------------------------


@dataclass(frozen=True)
class _Node:
    """One configuration value and where it was written.

    ``value`` is a ``dict[str, _Node]``, a ``list[_Node]`` or a scalar.
    """

    value: Any
    key: str
    line: int | None
    file: str | None
    from_env: bool = False

    @property
    def leaf(self) -> str:
        """Return the last part of the dotted key, for messages."""
        return self.key.rpartition(".")[2] or "configuration"

    def child(self, name: str) -> str:
        """Return the dotted key of the member ``name``."""
        return f"{self.key}.{name}" if self.key else name

    def shown(self) -> str:
        """Return the value for a message, unless it came from the environment."""
        return (
            "a value read from the environment" if self.from_env else repr(self.value)
        )

    def error(
        self, description: str, *, key: str | None = None, line: int | None = None
    ) -> ConfigError:
        """Return a config error located at this value (or at ``key``)."""
        return ConfigError(
            description,
            file=self.file,
            line=self.line if line is None else line,
            key=(self.key if key is None else key) or None,
        )

    def expected(self, what: str) -> ConfigError:
        """Return the error for a value of the wrong kind."""
        return self.error(
            f"Invalid {self.leaf}: expected {what}, got {_kind(self.value)}"
        )


def _kind(value: object) -> str:
    if value is None:
        return "null"
    kinds: list[tuple[type, str]] = [
        (bool, "a boolean"),
        (int, "an integer"),
        (float, "a number"),
        (str, "a string"),
        (dict, "a mapping"),
        (list, "a list"),
        (bytes, "binary data"),
    ]
    for kind, name in kinds:
        if isinstance(value, kind):
            return name
    return f"a {type(value).__name__}"


def _expand(node: _Node) -> _Node:
    """Replace ``${NAME}`` in a string value from the environment."""
    text: str = node.value
    if "$" not in text:
        return node
    used = False

    def replace(match: re.Match[str]) -> str:
        nonlocal used
        if match.group(0) == "$${":
            return "${"
        name = match.group(1)
        if name is None:
            raise node.error(
                f"Invalid {node.leaf}: expected ${{NAME}} with a name of letters, "
                "digits and underscores, or $${ for a literal '${'"
            )
        value = os.environ.get(name)
        if value is None:
            raise node.error(f"Environment variable '{name}' is not set")
        used = True
        return value

    expanded = _INTERPOLATION.sub(replace, text)
    return dataclasses.replace(node, value=expanded, from_env=used)


def _from_python(value: object, key: str) -> _Node:
    """Convert a mapping source into nodes without lines."""
    if isinstance(value, Mapping):
        members: dict[str, _Node] = {}
        for name, member in value.items():
            if not isinstance(name, str):
                raise ConfigError(
                    f"Invalid key {name!r}: expected a string, got {_kind(name)}",
                    key=key or None,
                )
            child = f"{key}.{name}" if key else name
            members[name] = _from_python(member, child)
        return _Node(members, key, None, None)
    if isinstance(value, (list, tuple)):
        items = [_from_python(item, f"{key}[{i}]") for i, item in enumerate(value)]
        return _Node(items, key, None, None)
    node = _Node(value, key, None, None)
    return _expand(node) if isinstance(value, str) else node


class _YamlReader:
    """Read a YAML file into nodes that remember their lines.

    A member of a mapping takes the line of its key; an item of a list its
    own line, except an alias, which takes the line of its anchor.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self.lines: dict[str, int] = {}
        self._constructor = yaml.SafeLoader("")
        self._active: set[int] = set()
        self._count = 0

    def read(self) -> _Node:
        """Parse the file; return the root node."""
        document = self._compose(self._text())
        if document is None:
            raise ConfigError(
                "Invalid configuration: expected a mapping of settings, "
                "got an empty document",
                file=self.path,
            )
        return self._convert(document, "", document.start_mark.line + 1)

    def _text(self) -> str:
        try:
            with open(self.path, encoding="utf-8") as stream:
                return stream.read()
        except FileNotFoundError:
            raise ConfigError("Configuration file not found", file=self.path) from None
        except UnicodeDecodeError as exc:
            raise ConfigError(
                "Cannot read the configuration file: it is not UTF-8", file=self.path
            ) from exc
        except OSError as exc:
            raise ConfigError(
                f"Cannot read the configuration file: {exc.strerror}", file=self.path
            ) from exc

    def _compose(self, text: str) -> yaml.Node | None:
        try:
            return yaml.compose(text, Loader=yaml.SafeLoader)
        except yaml.MarkedYAMLError as exc:
            # The cause's text quotes the source line: keep it out of the chain.
            mark = exc.problem_mark
            raise self._error(
                f"Invalid YAML: {exc.problem or 'syntax error'}",
                None if mark is None else mark.line + 1,
            ) from None
        except yaml.reader.ReaderError as exc:
            line = text.count("\n", 0, exc.position) + 1
            raise self._error(
                f"Invalid YAML: {exc.reason} (#x{exc.character:04x})", line
            ) from None

    def _error(self, description: str, line: int | None, key: str = "") -> ConfigError:
        return ConfigError(description, file=self.path, line=line, key=key or None)

    def _convert(self, node: yaml.Node, key: str, line: int) -> _Node:
        self._count += 1
        if self._count > _MAX_VALUES:
            raise self._error(
                "Invalid configuration: too many values once YAML aliases are expanded",
                line,
                key,
            )
        if key:
            self.lines[key] = line
        if isinstance(node, yaml.ScalarNode):
            return self._scalar(node, key, line)
        if id(node) in self._active:
            raise self._error(
                "Invalid YAML: an alias refers to a value that holds it", line, key
            )
        self._active.add(id(node))
        try:
            return _Node(self._collection(node, key), key, line, self.path)
        finally:
            self._active.discard(id(node))

    def _collection(self, node: yaml.Node, key: str) -> dict[str, _Node] | list[_Node]:
        line = node.start_mark.line + 1
        if isinstance(node, yaml.MappingNode) and node.tag == _YAML_MAP:
            return self._mapping(node, key)
        if isinstance(node, yaml.SequenceNode) and node.tag == _YAML_SEQ:
            return [
                self._convert(item, f"{key}[{i}]", item.start_mark.line + 1)
                for i, item in enumerate(node.value)
            ]
        raise self._error(f"Invalid YAML: unsupported tag {node.tag!r}", line, key)

    def _mapping(self, node: yaml.MappingNode, key: str) -> dict[str, _Node]:
        members: dict[str, _Node] = {}
        first: dict[str, int] = {}
        for key_node, value_node in node.value:
            line = key_node.start_mark.line + 1
            name = self._key(key_node, key, line)
            child = f"{key}.{name}" if key else name
            if name in first:
                raise self._error(
                    f"Duplicate key '{name}': first given on line {first[name]}",
                    line,
                    child,
                )
            first[name] = line
            members[name] = self._convert(value_node, child, line)
        return members

    def _key(self, node: yaml.Node, parent: str, line: int) -> str:
        # Keys are names from the schema or user names: never interpolated.
        if node.tag == _YAML_MERGE:
            raise self._error(
                "Invalid YAML: merge keys ('<<') are not supported", line, parent
            )
        if isinstance(node, yaml.ScalarNode):
            name = self._construct(node, parent, line)
            if isinstance(name, str):
                return name
            kind = _kind(name)
        else:
            kind = "a mapping" if isinstance(node, yaml.MappingNode) else "a list"
        raise self._error(f"Invalid key: expected a string, got {kind}", line, parent)

    def _construct(self, node: yaml.ScalarNode, key: str, line: int) -> object:
        try:
            return self._constructor.construct_object(node, deep=True)
        except yaml.constructor.ConstructorError as exc:
            raise self._error(
                f"Invalid YAML: {exc.problem or 'unsupported value'}", line, key
            ) from None

    def _scalar(self, node: yaml.ScalarNode, key: str, line: int) -> _Node:
        value = self._construct(node, key, line)
        result = _Node(value, key, line, self.path)
        return _expand(result) if isinstance(value, str) else result


# -- Checks shared by the sections ------------------------------------------


def _members(node: _Node, what: str) -> dict[str, _Node]:
    if not isinstance(node.value, dict):
        raise node.expected(what)
    return node.value


def _items(node: _Node, what: str) -> list[_Node]:
    if not isinstance(node.value, list):
        raise node.expected(what)
    return node.value


def _check_keys(members: Mapping[str, _Node], allowed: Iterable[str]) -> None:
    allowed = list(allowed)
    for name, member in members.items():
        if name not in allowed:
            raise member.error(
                f"Unknown key '{name}': expected one of {', '.join(allowed)}"
            )


def _require(node: _Node, members: Mapping[str, _Node], name: str, what: str) -> _Node:
    member = members.get(name)
    if member is None:
        raise node.error(f"Missing key '{name}': expected {what}", key=node.child(name))
    return member


def _text(node: _Node, what: str, *, empty: bool = False) -> str:
    value = node.value
    if not isinstance(value, str):
        raise node.expected(what)
    if not value and not empty:
        raise node.error(f"Invalid {node.leaf}: expected {what}, got an empty string")
    return value


def _bool(node: _Node) -> bool:
    if not isinstance(node.value, bool):
        raise node.expected("true or false")
    return node.value


def _int(node: _Node, what: str, lowest: int, highest: int | None = None) -> int:
    value = node.value
    if isinstance(value, bool) or not isinstance(value, int):
        raise node.expected(what)
    if value < lowest or (highest is not None and value > highest):
        raise node.error(f"Invalid {node.leaf}: expected {what}, got {value}")
    return value


def _seconds(node: _Node, what: str) -> float:
    value = node.value
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise node.expected(what)
    if not value >= 0:
        raise node.error(f"Invalid {node.leaf}: expected {what}, got {value}")
    return float(value)


def _choice(node: _Node, choices: Mapping[str, T]) -> T:
    what = "one of " + ", ".join(choices)
    if not isinstance(node.value, str):
        raise node.expected(what)
    if node.value not in choices:
        raise node.error(f"Invalid {node.leaf}: expected {what}, got {node.shown()}")
    return choices[node.value]


def _strings(
    node: _Node, what: str, item: str, *, empty: bool = False
) -> dict[str, _Node]:
    """Return the distinct strings of a list, each with its node, in order."""
    found: dict[str, _Node] = {}
    for entry in _items(node, what):
        value = _text(entry, item, empty=empty)
        if value in found:
            raise entry.error(f"Invalid {entry.leaf}: {entry.shown()} is listed twice")
        found[value] = entry
    return found


def _role_names(node: _Node) -> frozenset[str]:
    roles = _strings(node, "a list of role names", "a role name")
    for role, entry in roles.items():
        if role in ("*", "**"):
            meaning = "known-role" if role == "*" else "any-user"
            raise entry.error(
                f"Invalid {entry.leaf}: '{role}' is servlet syntax, not a role; "
                f"write 'authorization: {meaning}' instead"
            )
    return frozenset(roles)


def _reference(node: _Node, known: Mapping[str, T], what: str) -> T:
    name = _text(node, f"the name of a {what}")
    if name not in known:
        names = ", ".join(known)
        hint = f"expected one of {names}" if names else f"no {what} is defined"
        raise node.error(f"Unknown {what} {node.shown()}: {hint}")
    return known[name]


def _relocate(node: _Node, exc: ConfigError) -> ConfigError:
    """Return ``exc`` located at ``node``, for errors raised without a place."""
    return node.error(exc.description)


# -- Sections ---------------------------------------------------------------


class _Loader:
    """Build a :class:`SecurityConfig` from nodes, one section at a time.

    :param base: the folder relative file names resolve against, or
        ``None`` for the working directory.
    """

    def __init__(self, base: str | None) -> None:
        self.base = base
        self.config = SecurityConfig()
        self.constraint_names: dict[str, _Node] = {}

    def load(self, root: _Node) -> SecurityConfig:
        """Check the top-level keys, then build each section in table order."""
        settings = _members(root, "a mapping of settings")
        for name, node in settings.items():
            if name in _LATER_SECTIONS:
                raise node.error(_not_available(f"Section '{name}'"))
        _check_keys(settings, _SECTIONS)
        for name, build in _SECTIONS.items():
            if name in settings:
                build(self, settings[name])
        return self.config


def _not_available(what: str) -> str:
    return f"{what} is recognised but not available in this version of securityhandler"


def _realm(loader: _Loader, node: _Node) -> None:
    realm = _text(node, "a realm name")
    if any(ord(char) < 32 or ord(char) == 127 for char in realm):
        raise node.error(
            f"Invalid {node.leaf}: expected a realm name without control characters"
        )
    loader.config.realm = realm


def _known_roles(loader: _Loader, node: _Node) -> None:
    loader.config.known_roles = _role_names(node)


def _deny_uncovered_methods(loader: _Loader, node: _Node) -> None:
    loader.config.deny_uncovered_methods = _bool(node)


def _enforce(loader: _Loader, node: _Node) -> None:
    loader.config.enforce = _bool(node)


def _secure_port(loader: _Loader, node: _Node) -> None:
    loader.config.secure_port = _int(node, "a port number from 0 to 65535", 0, 65535)


_PROXY_KEYS = ("x_for", "x_proto", "x_host", "x_port", "x_prefix")


def _proxy(loader: _Loader, node: _Node) -> None:
    members = _members(node, "a mapping of forwarded headers to hop counts")
    _check_keys(members, _PROXY_KEYS)
    hops = {
        name: _int(member, "a number of proxy hops (an integer >= 0)", 0)
        for name, member in members.items()
    }
    loader.config.proxy = ProxyConfig(**hops)


def _login_services(loader: _Loader, node: _Node) -> None:
    services = _members(node, "a mapping of login service names to settings")
    for name, service in services.items():
        if not name:
            raise service.error("Invalid login service name: expected a non-empty name")
        members = _members(service, "a mapping of login service settings")
        kind = _require(
            service, members, "type", "one of " + ", ".join(_LOGIN_SERVICES)
        )
        build = _choice(kind, _LOGIN_SERVICES)
        loader.config.login_services[name] = build(loader, name, service)


def _authenticators(loader: _Loader, node: _Node) -> None:
    for entry in _items(node, "a list of authenticators"):
        members = _members(entry, "a mapping of authenticator settings")
        kind = _require(entry, members, "type", "one of " + ", ".join(_AUTHENTICATORS))
        if isinstance(kind.value, str) and kind.value in _LATER_AUTHENTICATORS:
            raise kind.error(_not_available(f"Authenticator type '{kind.value}'"))
        build = _choice(kind, _AUTHENTICATORS)
        loader.config.authenticators.append(build(loader, entry))


def _constraints(loader: _Loader, node: _Node) -> None:
    for entry in _items(node, "a list of constraints"):
        loader.config.mappings.append(_constraint_mapping(loader, entry))


# -- Login services ----------------------------------------------------------

_HASH_KEYS = ("type", "file", "users", "reload_interval")


def _hash_login_service(loader: _Loader, name: str, node: _Node) -> LoginService:
    members = _members(node, "a mapping of login service settings")
    _check_keys(members, _HASH_KEYS)
    options: dict[str, Any] = {}
    if "file" in members:
        options["file"] = _realm_file(loader, members["file"])
    if "users" in members:
        users = members["users"]
        _members(users, "a mapping of user names to password and roles")
        options["users"] = _plain(users)
    if "reload_interval" in members:
        options["reload_interval"] = _seconds(
            members["reload_interval"], "a number of seconds >= 0"
        )

    # The service checks the users itself; its errors name a key relative to
    # the service and, for the realm file, the file and line already.
    try:
        return HashLoginService(name, **options)
    except ConfigError as exc:
        if exc.file is not None:
            raise
        found = _find(node, exc.key or "")
        key = node.child(exc.key) if exc.key else node.key
        raise found.error(exc.description, key=key) from exc


def _realm_file(loader: _Loader, node: _Node) -> str:
    value = node.value
    name = os.fspath(value) if isinstance(value, os.PathLike) else value
    if not isinstance(name, str) or not name:
        raise node.expected("a file name")
    path = os.path.abspath(os.path.join(loader.base or "", name))
    if not os.path.isfile(path):
        raise node.error(
            f"Invalid {node.leaf}: realm file {node.shown()} does not exist"
        )
    return path


def _plain(node: _Node) -> Any:
    """Return the plain Python value of a node and its members."""
    if isinstance(node.value, dict):
        return {name: _plain(member) for name, member in node.value.items()}
    if isinstance(node.value, list):
        return [_plain(item) for item in node.value]
    return node.value


def _find(node: _Node, dotted: str) -> _Node:
    """Return the deepest node along a dotted key relative to ``node``."""
    for name in dotted.split("."):
        if not isinstance(node.value, dict) or name not in node.value:
            break
        node = node.value[name]
    return node


# -- Token issuers -----------------------------------------------------------

_ISSUER_KEYS = (
    "preset",
    "issuer",
    "audiences",
    "jwks_uri",
    "algorithms",
    "leeway",
    "principal_claim",
    "role_claims",
    "role_map",
    "required_claims",
    "max_token_bytes",
)


def _issuers(loader: _Loader, node: _Node) -> None:
    issuers = _members(node, "a mapping of issuer names to settings")
    for name, settings in issuers.items():
        if not name:
            raise settings.error("Invalid issuer name: expected a non-empty name")
        loader.config.issuers[name] = _token_issuer(name, settings)


def _token_issuer(name: str, node: _Node) -> TokenIssuer:
    members = _members(node, "a mapping of issuer settings")
    _check_keys(members, _ISSUER_KEYS)
    options: dict[str, Any] = {}
    for key, member in members.items():
        options[key] = _ISSUER_SETTINGS[key](member)

    # The issuer checks its policy itself and names the setting at fault
    # as issuers.<name>.<setting>, the same dotted key as the file's.
    try:
        return TokenIssuer(name, **options)
    except ConfigError as exc:
        key = exc.key or node.key
        relative = key[len(node.key) + 1 :] if key.startswith(node.key + ".") else ""
        raise _find(node, relative).error(exc.description, key=key) from exc


def _role_map(node: _Node) -> dict[str, frozenset[str]]:
    members = _members(node, "a mapping of principals or claim values to roles")
    return {value: _role_names(roles) for value, roles in members.items()}


def _claim_values(node: _Node) -> dict[str, Any]:
    _members(node, "a mapping of claim names to required values")
    values: dict[str, Any] = _plain(node)
    return values


_ISSUER_SETTINGS: dict[str, Callable[[_Node], Any]] = {
    "preset": lambda node: _choice(node, {name: name for name in PRESETS}),
    "issuer": lambda node: _text(node, "the issuer URL (the exact 'iss')"),
    "audiences": lambda node: list(
        _strings(node, "a list of audiences", "an audience")
    ),
    "jwks_uri": lambda node: _text(node, "the URL of the issuer's JWKS"),
    "algorithms": lambda node: list(
        _strings(node, "a list of JWS algorithms", "an algorithm name")
    ),
    "leeway": lambda node: _int(node, "a number of seconds (an integer >= 0)", 0),
    "principal_claim": lambda node: _text(node, "a claim name"),
    "role_claims": lambda node: list(
        _strings(node, "a list of claim paths", "a claim path")
    ),
    "role_map": _role_map,
    "required_claims": _claim_values,
    "max_token_bytes": lambda node: _int(node, "a size in bytes (an integer >= 1)", 1),
}


# -- Authenticators ----------------------------------------------------------

_BASIC_KEYS = ("type", "login_service")


def _basic_authenticator(loader: _Loader, node: _Node) -> Authenticator:
    members = _members(node, "a mapping of authenticator settings")
    _check_keys(members, _BASIC_KEYS)
    reference = _require(node, members, "login_service", "a login service name")
    service = _reference(reference, loader.config.login_services, "login service")
    return BasicAuthenticator(service, realm=loader.config.realm)


_BEARER_KEYS = ("type", "issuers", "trust_serverless_authorization")
_IAP_KEYS = ("type", "issuer")


def _bearer_authenticator(loader: _Loader, node: _Node) -> Authenticator:
    members = _members(node, "a mapping of authenticator settings")
    _check_keys(members, _BEARER_KEYS)
    names = _require(node, members, "issuers", "a list of issuer names")
    entries = _strings(names, "a list of issuer names", "an issuer name")
    if not entries:
        raise names.error(f"Invalid {names.leaf}: expected at least one issuer name")
    issuers = [
        _reference(entry, loader.config.issuers, "issuer") for entry in entries.values()
    ]
    trust = members.get("trust_serverless_authorization")
    try:
        service = TokenLoginService("+".join(entries), issuers)
    except ConfigError as exc:
        raise _relocate(names, exc) from exc
    return BearerAuthenticator(
        service,
        realm=loader.config.realm,
        trust_serverless_authorization=_bool(trust) if trust is not None else False,
    )


def _iap_authenticator(loader: _Loader, node: _Node) -> Authenticator:
    members = _members(node, "a mapping of authenticator settings")
    _check_keys(members, _IAP_KEYS)
    reference = _require(node, members, "issuer", "the name of an iap issuer")
    issuer = _reference(reference, loader.config.issuers, "issuer")
    if issuer.preset.name != "iap":
        raise reference.error(
            f"Invalid {reference.leaf}: issuer {reference.shown()} has preset "
            f"{issuer.preset.name!r}; the IAP header needs an issuer with "
            "'preset: iap'"
        )
    service = TokenLoginService(issuer.name, [issuer])
    return IapAuthenticator(service, realm=loader.config.realm)


# -- Constraints -------------------------------------------------------------

_CONSTRAINT_KEYS = (
    "name",
    "paths",
    "methods",
    "omit_methods",
    "authorization",
    "roles",
    "transport",
)
_AUTHORIZATIONS = {
    "forbidden": Authorization.FORBIDDEN,
    "allowed": Authorization.ALLOWED,
    "any-user": Authorization.ANY_USER,
    "known-role": Authorization.KNOWN_ROLE,
}
_TRANSPORTS = {"any": Transport.ANY, "secure": Transport.SECURE}


def _constraint_mapping(loader: _Loader, node: _Node) -> ConstraintMapping:
    members = _members(node, "a mapping of constraint settings")
    _check_keys(members, _CONSTRAINT_KEYS)
    name = _constraint_name(loader, members.get("name"))
    paths = _paths(_require(node, members, "paths", "a list of path specs"))
    methods = _methods(members.get("methods"))
    omit_methods = _methods(members.get("omit_methods"))
    if methods and omit_methods:
        raise members["omit_methods"].error(
            "Give either methods or omit_methods, not both"
        )
    authorization, roles = _authorization(node, members)
    transport = Transport.ANY
    if "transport" in members:
        transport = _choice(members["transport"], _TRANSPORTS)

    try:
        constraint = Constraint(authorization, roles, transport, name)
        return ConstraintMapping(paths, constraint, methods, omit_methods)
    except ConfigError as exc:
        raise _relocate(node, exc) from exc


def _constraint_name(loader: _Loader, node: _Node | None) -> str | None:
    if node is None:
        return None
    name = _text(node, "a constraint name")
    first = loader.constraint_names.get(name)
    if first is not None:
        where = f" on line {first.line}" if first.line is not None else ""
        raise node.error(
            f"Invalid {node.leaf}: {node.shown()} is already used by "
            f"{first.key.rpartition('.')[0]}{where}"
        )
    loader.constraint_names[name] = node
    return name


def _paths(node: _Node) -> tuple[str, ...]:
    paths = _strings(node, "a list of path specs", "a path spec", empty=True)
    if not paths:
        raise node.error(f"Invalid {node.leaf}: expected at least one path spec")
    for path, entry in paths.items():
        try:
            PathSpec.parse(path)
        except PathSpecError as exc:
            if entry.from_env:
                raise entry.error(
                    f"Invalid {entry.leaf}: the path spec read from the environment "
                    "is not a valid path spec"
                ) from None
            raise _relocate(entry, exc) from exc
    return tuple(paths)


def _methods(node: _Node | None) -> frozenset[str]:
    if node is None:
        return frozenset()
    methods = _strings(node, "a list of HTTP methods", "an HTTP method")
    if not methods:
        raise node.error(
            f"Invalid {node.leaf}: expected at least one method; leave the key "
            "out to cover every method"
        )
    for method, entry in methods.items():
        if not set(method) <= _TOKEN_CHARS:
            raise entry.error(
                f"Invalid {entry.leaf}: expected an HTTP method token, "
                f"got {entry.shown()}"
            )
    return frozenset(methods)


def _authorization(
    node: _Node, members: Mapping[str, _Node]
) -> tuple[Authorization, frozenset[str]]:
    roles = members.get("roles")
    authorization = members.get("authorization")
    if roles is not None and authorization is not None:
        raise roles.error("Give either roles or authorization, not both")
    if roles is not None:
        names = _role_names(roles)
        if not names:
            raise roles.error(
                "Invalid roles: an empty list lets nobody in; write "
                "'authorization: forbidden' to deny every request"
            )
        return Authorization.SPECIFIC_ROLE, names
    if authorization is None:
        raise node.error(
            "Missing key 'authorization': expected one of "
            f"{', '.join(_AUTHORIZATIONS)}, or a list of roles",
            key=node.child("authorization"),
        )
    return _choice(authorization, _AUTHORIZATIONS), frozenset()


# -- Dispatch tables ---------------------------------------------------------

#: Top-level sections, built in this order (so a reference finds its target
#: whatever order the file uses).
_SECTIONS: dict[str, Callable[[_Loader, _Node], None]] = {
    "realm": _realm,
    "known_roles": _known_roles,
    "deny_uncovered_methods": _deny_uncovered_methods,
    "enforce": _enforce,
    "secure_port": _secure_port,
    "proxy": _proxy,
    "issuers": _issuers,
    "login_services": _login_services,
    "authenticators": _authenticators,
    "constraints": _constraints,
}
#: Login service types.
_LOGIN_SERVICES: dict[str, Callable[[_Loader, str, _Node], LoginService]] = {
    "hash": _hash_login_service,
}
#: Authenticator types.
_AUTHENTICATORS: dict[str, Callable[[_Loader, _Node], Authenticator]] = {
    "basic": _basic_authenticator,
    "bearer": _bearer_authenticator,
    "iap": _iap_authenticator,
}
#: Parts of the DESIGN schema this version does not build yet.
_LATER_SECTIONS = frozenset({"session"})
_LATER_AUTHENTICATORS = frozenset({"form", "openid"})
