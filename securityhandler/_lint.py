"""``securityhandler check``: lint a configuration that loads.

Each finding has a code, a place (file and line) and a one-line fix.
Findings of severity ``warning`` make ``check`` exit 1; ``note`` findings
are shown and do not, since the configuration is safe as it stands:

===== ======== ==========================================================
code  severity what
===== ======== ==========================================================
SH001 warning  methods no constraint of a spec covers, allowed unchecked
SH001 note     the same, answered 403 (``deny_uncovered_methods: true``)
SH002 warning  a method rule that a more specific spec does not repeat
SH003 warning  a role no login service, ``role_map`` or role claim grants
SH004 warning  a plain-text password in a realm
SH005 warning  Basic/form credentials that may cross plain HTTP
SH006 note     trusted ``X-Forwarded-*`` headers
SH007 warning  ``enforce: false``: nothing is blocked
SH008 warning  any other :class:`~securityhandler.errors.SecurityWarning`
===== ======== ==========================================================
"""

from __future__ import annotations

import json
import os
import re
import sys
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass

from .config import SecurityConfig, load_config
from .constraints import (
    Authorization,
    ConstraintMapping,
    ConstraintMappings,
    RoleInfo,
    SpecEntry,
    Transport,
    combine,
)
from .errors import ConfigError, SecurityWarning
from .pathspec import PathSpec, PathSpecGroup
from .tokens import TokenLoginService

WARNING = "warning"
NOTE = "note"

_PLAIN_USERS = re.compile(r"plain-text password for user (.+?); ")
_TEMPLATE_VARIABLE = re.compile(r"\{[^/{}]+\}")


@dataclass(frozen=True)
class Finding:
    """One lint finding.

    :param code: ``SH001`` and so on.
    :param severity: :data:`WARNING` (``check`` exits 1) or :data:`NOTE`.
    :param message: what is wrong and what it leads to.
    :param fix: one line saying what to change.
    :param file: the file at fault, if known.
    :param line: the 1-based line in that file, if known.
    """

    code: str
    severity: str
    message: str
    fix: str
    file: str | None = None
    line: int | None = None

    @property
    def location(self) -> str:
        """Return ``file:line``, ``file`` or ``""``."""
        if self.file is None:
            return ""
        return self.file if self.line is None else f"{self.file}:{self.line}"

    def as_dict(self) -> dict[str, object]:
        """Return the finding as a JSON-ready dict."""
        return asdict(self)


@dataclass(frozen=True)
class Loaded:
    """A configuration and the security warnings its loading raised.

    :param config: the loaded configuration.
    :param warnings: the text of each :class:`SecurityWarning`, in order.
    """

    config: SecurityConfig
    warnings: tuple[str, ...]


def load(path: str) -> Loaded:
    """Load ``path``, capturing the security warnings instead of printing them.

    :raises ConfigError: as :func:`~securityhandler.config.load_config` does.
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", SecurityWarning)
        config = load_config(path)
    security = []
    for warning in caught:
        if issubclass(warning.category, SecurityWarning):
            security.append(str(warning.message))
        else:
            warnings.warn_explicit(
                warning.message, warning.category, warning.filename, warning.lineno
            )
    return Loaded(config, tuple(security))


def lint(loaded: Loaded) -> list[Finding]:
    """Return every finding for a loaded configuration, in file and line order."""
    config = loaded.config
    places = _Places(config)
    mappings = ConstraintMappings(config.mappings)
    findings = [
        *_uncovered(config, mappings, places),
        *_shadowed(config, mappings, places),
        *_unholdable_roles(config, places),
        *_security_warnings(config, loaded.warnings, places),
        *_plain_http(config, places),
        *_proxy(config, places),
        *_report_only(config, places),
    ]
    # The configuration file's findings first, by line; then those of realm files.
    return sorted(
        findings, key=lambda f: (f.file != config.source, f.file or "", f.line or 0)
    )


def spec_kind(spec: PathSpec) -> str:
    """Return the kind of a path spec in words: ``prefix``, ``exact`` ..."""
    return spec.group.name.lower()


def authorization_name(authorization: Authorization | None) -> str:
    """Return an authorization as the configuration writes it: ``any-user`` ...

    Specific roles are ``roles``; ``None`` (no constraint) is ``uncovered``.
    """
    if authorization is None:
        return "uncovered"
    if authorization is Authorization.SPECIFIC_ROLE:
        return "roles"
    return authorization.name.lower().replace("_", "-")


def describe(info: RoleInfo, *, deny_uncovered: bool) -> str:
    """Return a combined demand in a few words: ``roles admin|ops +https``."""
    authorization = info.authorization
    if authorization is None:
        return "uncovered→403" if deny_uncovered else "uncovered→open"
    words = authorization_name(authorization)
    if authorization is Authorization.SPECIFIC_ROLE:
        words += " " + "|".join(sorted(info.roles))
    if info.secure and authorization is not Authorization.FORBIDDEN:
        words += " +https"
    return words


def spec_line(config: SecurityConfig, entry: SpecEntry) -> int | None:
    """Return the line of the first constraint of ``entry`` whose line is known."""
    lines = map(config.constraint_line, entry.mappings)
    return next((line for line in lines if line is not None), None)


# -- Places ------------------------------------------------------------------


class _Places:
    """Find the file and line of what a finding is about."""

    def __init__(self, config: SecurityConfig) -> None:
        self.file = config.source
        self.lines = config.lines
        self.config = config

    def key(self, key: str) -> tuple[str | None, int | None]:
        """Return the place of a dotted key."""
        return self.file, self.lines.get(key)

    def mapping(self, mapping: ConstraintMapping) -> tuple[str | None, int | None]:
        """Return the place of the constraint that built ``mapping``."""
        return self.file, self.config.constraint_line(mapping)

    def spec(self, entry: SpecEntry) -> tuple[str | None, int | None]:
        """Return the place where the spec of ``entry`` is first written."""
        for index, mapping in enumerate(self.config.mappings):
            if entry.spec.spec in mapping.paths:
                position = mapping.paths.index(entry.spec.spec)
                line = self.lines.get(f"constraints[{index}].paths[{position}]")
                return self.file, line or self.config.constraint_line(mapping)
        return self.file, None

    def label(self, mapping: ConstraintMapping) -> str:
        """Return how a message names a constraint: its name or its index."""
        if mapping.constraint.name:
            return f"'{mapping.constraint.name}'"
        for index, candidate in enumerate(self.config.mappings):
            if candidate is mapping:
                return f"constraints[{index}]"
        return "a constraint"


def _spec(spec: str) -> str:
    """Return a spec as messages quote it; the root spec ``""`` says what it is."""
    return "'' (root)" if spec == "" else f"'{spec}'"


def quoted(names: Iterable[str]) -> str:
    """Return names sorted, each quoted, separated by commas."""
    return ", ".join(repr(name) for name in sorted(names))


# -- SH001 uncovered methods -------------------------------------------------


def _uncovered(
    config: SecurityConfig, mappings: ConstraintMappings, places: _Places
) -> Iterable[Finding]:
    deny = config.deny_uncovered_methods
    outcome = "answered 403" if deny else "allowed without any check"
    severity = NOTE if deny else WARNING
    for entry in mappings.entries():
        spec = entry.spec.spec
        named = sorted(m for m, info in entry.by_method.items() if info.uncovered)
        covered = sorted(m for m, info in entry.by_method.items() if not info.uncovered)
        parts = []
        if named:
            parts.append(", ".join(named))
        if entry.other.uncovered:
            parts.append(
                "every method but " + ", ".join(covered) if covered else "every method"
            )
        if not parts:
            continue
        if not entry.other.uncovered:
            fix = f"Add a constraint on {_spec(spec)} for {', '.join(named)}"
        elif covered:
            fix = (
                f"Cover the rest of {_spec(spec)}: a constraint with omit_methods: "
                f"[{', '.join(covered)}] and, say, authorization: forbidden"
            )
        else:
            fix = f"Add a constraint on {_spec(spec)} that names no methods"
        yield Finding(
            "SH001",
            severity,
            f"Spec {_spec(spec)} leaves {' and '.join(parts)} uncovered: {outcome} "
            f"(deny_uncovered_methods: {str(deny).lower()})",
            fix,
            *places.spec(entry),
        )


# -- SH002 rules a more specific spec does not repeat ------------------------


def _shadowed(
    config: SecurityConfig, mappings: ConstraintMappings, places: _Places
) -> Iterable[Finding]:
    entries = mappings.entries()
    deny = config.deny_uncovered_methods
    known = (
        mappings.roles()
        if config.known_roles is None
        else frozenset(config.known_roles)
    )
    for entry in entries:
        rules = [m for m in entry.mappings if m.methods and _restricts(m)]
        for mapping in rules:
            for method in sorted(mapping.methods):
                broad = _effective(entry.role_info(method), deny)
                for other in entries:
                    if other.spec.sort_key() >= entry.spec.sort_key():
                        continue
                    if not _overlaps(entry.spec, other.spec):
                        continue
                    narrow = _effective(other.role_info(method), deny)
                    if _weaker(narrow, broad, known):
                        yield _shadow_finding(
                            mapping, method, entry, other, narrow, places, deny
                        )


def _restricts(mapping: ConstraintMapping) -> bool:
    constraint = mapping.constraint
    return (
        constraint.authorization is not Authorization.ALLOWED
        or constraint.transport is Transport.SECURE
    )


def _effective(info: RoleInfo, deny: bool) -> RoleInfo:
    """Return what an uncovered method really gets: forbidden or allowed."""
    if not info.uncovered:
        return info
    return RoleInfo(Authorization.FORBIDDEN if deny else Authorization.ALLOWED)


def _weaker(narrow: RoleInfo, broad: RoleInfo, known: frozenset[str]) -> bool:
    """Tell whether ``narrow`` lets in someone ``broad`` keeps out."""
    n, b = narrow.authorization, broad.authorization
    assert n is not None
    assert b is not None
    if n is Authorization.FORBIDDEN:
        return False
    if broad.secure and not narrow.secure:
        return True
    if b is Authorization.FORBIDDEN:
        return True
    if b is Authorization.ANY_USER:
        return n is Authorization.ALLOWED
    if b is Authorization.KNOWN_ROLE:
        return n in (Authorization.ALLOWED, Authorization.ANY_USER) or (
            n is Authorization.SPECIFIC_ROLE and not narrow.roles <= known
        )
    if b is Authorization.SPECIFIC_ROLE:
        if n is Authorization.SPECIFIC_ROLE:
            return not narrow.roles <= broad.roles
        if n is Authorization.KNOWN_ROLE:
            return not known <= broad.roles
        return True
    return False


def _overlaps(broad: PathSpec, narrow: PathSpec) -> bool:
    """Tell whether some path ``broad`` matches is matched by ``narrow`` too.

    ``narrow`` ranks before ``broad``, so on those paths ``narrow`` wins.
    Regex specs are not analysed: their overlap is not decidable here.
    """
    group = narrow.group
    if group is PathSpecGroup.REGEX:
        return False
    if group is PathSpecGroup.ROOT:
        return broad.matches("/")
    if group is PathSpecGroup.EXACT:
        return broad.matches(narrow.base)
    if broad.group is PathSpecGroup.DEFAULT:
        return True
    if group is PathSpecGroup.PREFIX:
        if broad.group is PathSpecGroup.SUFFIX:
            return True
        return broad.matches(narrow.base)
    if group is PathSpecGroup.TEMPLATE:
        sample = _TEMPLATE_VARIABLE.sub("x", narrow.spec)
        if broad.group is PathSpecGroup.SUFFIX and narrow.spec.endswith("}"):
            return True
        return broad.matches(sample)
    return False


def _shadow_finding(
    mapping: ConstraintMapping,
    method: str,
    entry: SpecEntry,
    other: SpecEntry,
    narrow: RoleInfo,
    places: _Places,
    deny: bool,
) -> Finding:
    label = places.label(mapping)
    spec, narrow_spec = entry.spec.spec, other.spec.spec
    demand = describe(combine([mapping.constraint]), deny_uncovered=deny)
    if mapping.constraint.authorization is Authorization.FORBIDDEN:
        fix = f"Add {_spec(narrow_spec)} to the paths of {label}"
    else:
        fix = (
            f"Give {_spec(narrow_spec)} its own {method} rule like {label}, and "
            f"omit {method} from its broader rules (omit_methods)"
        )
    return Finding(
        "SH002",
        WARNING,
        f"Rule {label} ({demand} for {method} on {_spec(spec)}) does not reach "
        f"{_spec(narrow_spec)}: only the best-matching spec applies, and "
        f"{_spec(narrow_spec)} answers {method} with "
        f"{describe(narrow, deny_uncovered=deny)}",
        fix,
        *places.mapping(mapping),
    )


# -- SH003 roles no one can hold ---------------------------------------------


def grantable_roles(config: SecurityConfig) -> frozenset[str] | None:
    """Return every role an authenticated identity can hold.

    :return: ``None`` when a token issuer reads roles from claims, since any
        role can then arrive in a token.
    """
    roles: set[str] = set()
    for authenticator in config.authenticators:
        service = getattr(authenticator, "login_service", None)
        if isinstance(service, TokenLoginService):
            if any(issuer.role_claims for issuer in service.issuers):
                return None
            roles |= service.roles()
        elif service is not None and callable(getattr(service, "roles", None)):
            roles |= service.roles()
    return frozenset(roles)


def _unholdable_roles(config: SecurityConfig, places: _Places) -> Iterable[Finding]:
    grantable = grantable_roles(config)
    if grantable is None:
        return
    known = config.known_roles
    for index, mapping in enumerate(config.mappings):
        constraint = mapping.constraint
        if constraint.authorization is Authorization.SPECIFIC_ROLE:
            missing = constraint.roles - grantable
            if missing:
                yield _role_finding(
                    f"Role {quoted(missing)} of constraint {places.label(mapping)}",
                    places.key(f"constraints[{index}].roles"),
                    all_missing=missing == constraint.roles,
                )
        elif (
            constraint.authorization is Authorization.KNOWN_ROLE
            and known is not None
            and not known & grantable
        ):
            yield _role_finding(
                f"No known role ({quoted(known) or 'none'}) of constraint "
                f"{places.label(mapping)}",
                places.key("known_roles"),
                all_missing=True,
            )


def _role_finding(
    subject: str, place: tuple[str | None, int | None], *, all_missing: bool
) -> Finding:
    effect = "nobody can pass it" if all_missing else "it grants nothing"
    return Finding(
        "SH003",
        WARNING,
        f"{subject} is held by no user of a login service in the chain and "
        f"granted by no role_map: {effect}",
        "Give a user the role (realm file or users), map it in an issuer's "
        "role_map, or correct its spelling",
        *place,
    )


# -- SH004 and SH008: security warnings raised while loading -----------------


def _security_warnings(
    config: SecurityConfig, texts: Sequence[str], places: _Places
) -> Iterable[Finding]:
    for text in texts:
        users = _PLAIN_USERS.search(text)
        if users is None:
            yield Finding(
                "SH008",
                WARNING,
                text,
                "Change the setting the warning names, unless you accept the risk",
                places.file,
                _setting_line(text, places),
            )
            continue
        for user in users.group(1).split(", "):
            yield Finding(
                "SH004",
                WARNING,
                f"User '{user}' has a plain-text password",
                "Store an scrypt hash instead: securityhandler hash-password",
                *_user_place(config, text, user, places),
            )


def _setting_line(text: str, places: _Places) -> int | None:
    """Return the line of the first setting whose name the warning quotes."""
    lines = [
        line
        for key, line in places.lines.items()
        if "_" in key.rpartition(".")[2] and key.rpartition(".")[2] in text
    ]
    return min(lines, default=None)


def _user_place(
    config: SecurityConfig, text: str, user: str, places: _Places
) -> tuple[str | None, int | None]:
    source = text.partition(": plain-text")[0]
    if os.path.isfile(source):
        return source, _realm_line(source, user)
    for name in config.login_services:
        line = places.lines.get(f"login_services.{name}.users.{user}")
        if line is not None:
            return places.file, line
    return places.file, None


def _realm_line(path: str, user: str) -> int | None:
    with open(path, encoding="utf-8-sig") as stream:
        for number, line in enumerate(stream, 1):
            if line.partition(":")[0].strip() == user:
                return number
    return None


# -- SH005 credentials over plain HTTP ---------------------------------------


def _plain_http(config: SecurityConfig, places: _Places) -> Iterable[Finding]:
    if config.secure_port or (config.proxy is not None and config.proxy.trusts_any):
        return
    open_ones = [
        m
        for m in config.mappings
        if m.constraint.authorization
        in (
            Authorization.ANY_USER,
            Authorization.KNOWN_ROLE,
            Authorization.SPECIFIC_ROLE,
        )
        and m.constraint.transport is Transport.ANY
    ]
    if not open_ones:
        return
    labels = ", ".join(places.label(m) for m in open_ones)
    for index, authenticator in enumerate(config.authenticators):
        if authenticator.auth_type not in ("BASIC", "FORM"):
            continue
        yield Finding(
            "SH005",
            WARNING,
            f"{authenticator.auth_type.capitalize()} credentials may cross plain "
            f"HTTP: constraints {labels} do not demand secure transport, "
            "secure_port is 0 and no proxy is trusted to report HTTPS",
            "Add 'transport: secure' to those constraints (behind a TLS proxy, "
            "also trust its X-Forwarded-Proto)",
            *places.key(f"authenticators[{index}]"),
        )


# -- SH006 trusted forwarded headers, SH007 report-only ----------------------


def _proxy(config: SecurityConfig, places: _Places) -> Iterable[Finding]:
    proxy = config.proxy
    if proxy is None or not proxy.trusts_any:
        return
    trusted = [
        f"X-Forwarded-{name[2:].capitalize()} ({hops} hop{'s' * (hops != 1)})"
        for name, hops in asdict(proxy).items()
        if hops
    ]
    yield Finding(
        "SH006",
        NOTE,
        f"Trusting {', '.join(trusted)}: a client can forge these headers "
        "unless the proxy in front overwrites or strips them",
        "Keep only if a proxy (Cloud Run's front end, a load balancer) always "
        "sets them; otherwise remove 'proxy'",
        *places.key("proxy"),
    )


def _report_only(config: SecurityConfig, places: _Places) -> Iterable[Finding]:
    if config.enforce:
        return
    yield Finding(
        "SH007",
        WARNING,
        "enforce is false: every request reaches the application; denials "
        "are only logged (decision 'would_deny')",
        "Set 'enforce: true' once the audit log shows no unexpected would_deny",
        *places.key("enforce"),
    )


# -- The command -------------------------------------------------------------

EXIT_OK = 0
EXIT_FOUND = 1
EXIT_USAGE = 2


def emit(text: str) -> None:
    """Print ``text`` to stdout; a reader that left early (``| head``) is fine."""
    try:
        print(text, flush=True)
    except BrokenPipeError:
        # Python's recipe: point stdout at devnull so exiting does not fail too.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())


def config_error(exc: ConfigError, *, as_json: bool) -> int:
    """Print a configuration error (stdout as JSON, else stderr); return 2."""
    if as_json:
        error = {
            "code": exc.error,
            "message": exc.description,
            "file": exc.file,
            "line": exc.line,
            "key": exc.key,
        }
        emit(json.dumps({"valid": False, "error": error}, indent=2))
    else:
        print(f"error: {exc}", file=sys.stderr)
    return EXIT_USAGE


def run_check(path: str, *, as_json: bool) -> int:
    """Load and lint ``path``; print the findings; return the exit code."""
    try:
        findings = lint(load(path))
    except ConfigError as exc:
        return config_error(exc, as_json=as_json)
    warnings_found = sum(f.severity == WARNING for f in findings)
    if as_json:
        document = {
            "config": path,
            "valid": True,
            "findings": [f.as_dict() for f in findings],
            "warnings": warnings_found,
            "notes": len(findings) - warnings_found,
        }
        emit(json.dumps(document, indent=2))
    else:
        emit(_check_text(path, findings, warnings_found))
    return EXIT_FOUND if warnings_found else EXIT_OK


def _check_text(path: str, findings: Sequence[Finding], count: int) -> str:
    lines = []
    for finding in findings:
        where = finding.location or path
        lines.append(f"{where}: {finding.severity} {finding.code}: {finding.message}")
        lines.append(f"    fix: {finding.fix}")
    notes = len(findings) - count
    lines.append(
        f"{path}: {count} warning{'s' * (count != 1)}, {notes} note{'s' * (notes != 1)}"
    )
    return "\n".join(lines)
