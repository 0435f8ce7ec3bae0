"""Constraints, constraint mappings and how they combine (Servlet 13.8).

A :class:`ConstraintMapping` says which paths and methods a
:class:`Constraint` covers. :class:`ConstraintMappings` compiles a list of
them into a :class:`RoleInfo` per path spec and method, once, at start-up.
The rules, where Jetty's ``ConstraintSecurityHandler`` is the reference:

- only the best-matching path spec applies; nothing is inherited from a
  shorter match;
- for that spec, the constraints that apply to a method are those naming the
  method, those naming no method, and those whose omission list does not
  hold the method (exact membership, not Jetty's substring test). Their
  combination does not depend on declaration order;
- combining: forbidden beats everything, allowed beats any role rule,
  any-user beats known-role beats specific roles, role lists are united, and
  secure transport survives only if every constraint demands it;
- a method to which no constraint applies is *uncovered*.

Omission constraints also join a method's own entry, as the Servlet
specification's example in 13.8.2 requires (``PUT`` on
``/acme/wholesale/*`` is precluded there); Jetty skips them in that case.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass, field

from .errors import ConfigError
from .pathspec import PathMappings, PathSpec

_TOKEN_CHARS = frozenset(
    "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
)


class Authorization(enum.IntEnum):
    """Who may pass a constraint, strongest first.

    The numeric order is the combination order: when constraints combine,
    the lowest value wins, except that :attr:`SPECIFIC_ROLE` lists unite.
    """

    FORBIDDEN = 0
    ALLOWED = 1
    ANY_USER = 2
    KNOWN_ROLE = 3
    SPECIFIC_ROLE = 4


class Transport(enum.Enum):
    """The transport a constraint demands."""

    ANY = "any"
    SECURE = "secure"


@dataclass(frozen=True)
class Constraint:
    """What a request must satisfy to reach the application.

    :param authorization: who may pass.
    :param roles: for :attr:`Authorization.SPECIFIC_ROLE`, the roles of
        which the identity must hold at least one; empty otherwise.
    :param transport: :attr:`Transport.SECURE` demands HTTPS.
    :param name: a label for audit records and the CLI.
    """

    authorization: Authorization
    roles: frozenset[str] = frozenset()
    transport: Transport = Transport.ANY
    name: str | None = None

    def __post_init__(self) -> None:
        if self.authorization is Authorization.SPECIFIC_ROLE:
            if not self.roles:
                raise ConfigError(
                    "A specific-roles constraint needs at least one role; "
                    "to let nobody in use authorization 'forbidden'"
                )
        elif self.roles:
            raise ConfigError(
                f"Roles are only for specific-roles constraints, not "
                f"{self.authorization.name.lower()}"
            )
        for role in self.roles:
            if not isinstance(role, str) or not role:
                raise ConfigError(f"A role must be a non-empty string, got {role!r}")

    @classmethod
    def forbidden(cls, *, name: str | None = None) -> Constraint:
        """Return a constraint nobody passes."""
        return cls(Authorization.FORBIDDEN, name=name)

    @classmethod
    def allowed(
        cls, *, transport: Transport = Transport.ANY, name: str | None = None
    ) -> Constraint:
        """Return a constraint everybody passes, authenticated or not."""
        return cls(Authorization.ALLOWED, transport=transport, name=name)

    @classmethod
    def any_user(
        cls, *, transport: Transport = Transport.ANY, name: str | None = None
    ) -> Constraint:
        """Return a constraint any authenticated identity passes (``**``)."""
        return cls(Authorization.ANY_USER, transport=transport, name=name)

    @classmethod
    def known_role(
        cls, *, transport: Transport = Transport.ANY, name: str | None = None
    ) -> Constraint:
        """Return a constraint an identity with any known role passes (``*``)."""
        return cls(Authorization.KNOWN_ROLE, transport=transport, name=name)

    @classmethod
    def with_roles(
        cls,
        *roles: str,
        transport: Transport = Transport.ANY,
        name: str | None = None,
    ) -> Constraint:
        """Return a constraint an identity holding one of ``roles`` passes."""
        return cls(
            Authorization.SPECIFIC_ROLE,
            frozenset(roles),
            transport=transport,
            name=name,
        )


@dataclass(frozen=True)
class ConstraintMapping:
    """Apply a constraint to path specs, for some or all methods.

    :param paths: the path specs (see :mod:`securityhandler.pathspec`).
    :param constraint: what those paths demand.
    :param methods: the methods covered; empty means all methods.
    :param omit_methods: all methods except these; exclusive with
        ``methods``.
    """

    paths: tuple[str, ...]
    constraint: Constraint
    methods: frozenset[str] = frozenset()
    omit_methods: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        if isinstance(self.paths, str):
            object.__setattr__(self, "paths", (self.paths,))
        object.__setattr__(self, "methods", frozenset(self.methods))
        object.__setattr__(self, "omit_methods", frozenset(self.omit_methods))
        if not self.paths:
            raise ConfigError("A constraint mapping needs at least one path spec")
        if self.methods and self.omit_methods:
            raise ConfigError("Give either methods or omit_methods, not both")
        for method in self.methods | self.omit_methods:
            if not method or not set(method) <= _TOKEN_CHARS:
                raise ConfigError(f"{method!r} is not an HTTP method token")

    def applies_to(self, method: str) -> bool:
        """Tell whether this mapping covers ``method`` (exact membership)."""
        if self.methods:
            return method in self.methods
        return method not in self.omit_methods


@dataclass(frozen=True)
class RoleInfo:
    """The combined demand of every constraint that applies to a request.

    :param authorization: the combined authorization; ``None`` means no
        constraint covers the method (uncovered).
    :param roles: for specific roles, the roles any one of which passes.
    :param secure: whether HTTPS is required.
    :param constraints: the names of the constraints that were combined.
    """

    authorization: Authorization | None
    roles: frozenset[str] = frozenset()
    secure: bool = False
    constraints: tuple[str, ...] = ()

    @property
    def uncovered(self) -> bool:
        """Tell whether no constraint covers the method."""
        return self.authorization is None


UNCOVERED = RoleInfo(None)


def combine(constraints: Iterable[Constraint]) -> RoleInfo:
    """Combine the constraints that apply to one path spec and method.

    :param constraints: any order; the result does not depend on it.
    :return: :data:`UNCOVERED` when ``constraints`` is empty.
    """
    items = list(constraints)
    if not items:
        return UNCOVERED
    authorization = min(c.authorization for c in items)
    roles: frozenset[str] = frozenset()
    if authorization is Authorization.SPECIFIC_ROLE:
        roles = frozenset().union(*(c.roles for c in items))
    secure = all(c.transport is Transport.SECURE for c in items)
    names = tuple(sorted({c.name for c in items if c.name}))
    return RoleInfo(authorization, roles, secure, names)


@dataclass(frozen=True)
class SpecEntry:
    """The compiled constraints of one path spec.

    ``by_method`` holds the :class:`RoleInfo` of each method that some mapping
    names; ``other`` is the answer for every other method.
    """

    spec: PathSpec
    by_method: dict[str, RoleInfo]
    other: RoleInfo
    mappings: tuple[ConstraintMapping, ...] = field(default=(), compare=False)

    def role_info(self, method: str) -> RoleInfo:
        """Return the combined demand for ``method`` on this spec."""
        return self.by_method.get(method, self.other)

    def mappings_for(self, method: str) -> tuple[ConstraintMapping, ...]:
        """Return the mappings whose constraints :meth:`role_info` combines."""
        named = method if method in self.by_method else None
        return tuple(_applicable(self.mappings, named))


class ConstraintMappings:
    """The compiled, immutable form of a list of constraint mappings.

    :param mappings: the mappings, in any order.
    :raises ConfigError: for an invalid path spec.
    """

    def __init__(self, mappings: Iterable[ConstraintMapping]) -> None:
        self.mappings = tuple(mappings)
        per_spec: dict[str, list[ConstraintMapping]] = {}
        parsed: dict[str, PathSpec] = {}
        for mapping in self.mappings:
            for path in mapping.paths:
                if path not in parsed:
                    parsed[path] = PathSpec.parse(path)
                per_spec.setdefault(path, []).append(mapping)
        self._entries = {
            path: _compile_spec(parsed[path], group) for path, group in per_spec.items()
        }
        self._paths = PathMappings(
            (entry.spec, entry) for entry in self._entries.values()
        )

    def find(self, path: str) -> SpecEntry | None:
        """Return the compiled entry of the best spec for ``path``, if any."""
        found = self._paths.match(path)
        return None if found is None else found[1]

    def entries(self) -> list[SpecEntry]:
        """Return every compiled spec entry, best precedence first."""
        return [self._entries[spec.spec] for spec in self._paths.specs()]

    def roles(self) -> frozenset[str]:
        """Return every role named by a specific-roles constraint."""
        return frozenset().union(*(m.constraint.roles for m in self.mappings))


def _compile_spec(spec: PathSpec, mappings: list[ConstraintMapping]) -> SpecEntry:
    named = frozenset().union(*(m.methods | m.omit_methods for m in mappings))
    by_method = {
        method: combine(m.constraint for m in _applicable(mappings, method))
        for method in named
    }
    other = combine(m.constraint for m in _applicable(mappings, None))
    return SpecEntry(spec, by_method, other, tuple(mappings))


def _applicable(
    mappings: Iterable[ConstraintMapping], method: str | None
) -> list[ConstraintMapping]:
    """Return the mappings that apply to ``method``.

    ``None`` stands for any method no mapping names: the all-methods mappings
    and every omission mapping (its list cannot hold an unnamed method) cover it.
    """
    if method is None:
        return [m for m in mappings if not m.methods]
    return [m for m in mappings if m.applies_to(method)]
