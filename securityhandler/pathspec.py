"""Path specs and the mapping that picks the single best one for a path.

Forms, in order of precedence (Servlet 12.2 and Jetty's ``PathMappings``):

========== ================= ==========================================
group      example           matches
========== ================= ==========================================
root       ``""``            only ``/`` (and the empty path)
exact      ``/a/b``          that path only
template   ``/users/{id}``   one segment per variable
regex      ``^/v[0-9]+/.*``  the whole path (``re.fullmatch``)
prefix     ``/a/*``          ``/a``, ``/a/`` and below, never ``/ab``
suffix     ``*.tar.gz``      last segment ending in ``.tar.gz``
default    ``/``             everything
========== ================= ==========================================

Templates and regexes rank between exact and prefix, as Jetty's "middle
glob" group does; all templates before all regexes. Among templates the one
with more literal characters wins (``/u/{id}/edit`` beats ``/u/{a}/{b}``),
among regexes the longer source; ties go to the spec text in sort order, so
the result never depends on declaration order.
Longer prefixes beat shorter ones and longer suffixes beat shorter ones.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from .errors import PathSpecError

T = TypeVar("T")

_TEMPLATE_VARIABLE = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


class PathSpecGroup(enum.IntEnum):
    """The kinds of path spec, in order of precedence."""

    ROOT = 0
    EXACT = 1
    TEMPLATE = 2
    REGEX = 3
    PREFIX = 4
    SUFFIX = 5
    DEFAULT = 6


@dataclass(frozen=True)
class PathSpec:
    """One parsed path spec.

    Build it with :meth:`parse`; ``base`` is the exact path, the prefix
    without ``/*``, the suffix without ``*.``, or the regex source.
    """

    spec: str
    group: PathSpecGroup
    base: str
    pattern: re.Pattern[str] | None = field(default=None, compare=False)

    @classmethod
    def parse(cls, spec: str) -> PathSpec:
        """Parse ``spec`` into a path spec.

        :param spec: one of the forms in the module documentation.
        :raises PathSpecError: if ``spec`` is none of them.
        """
        if not isinstance(spec, str):
            raise PathSpecError(
                f"A path spec must be a string, not {type(spec).__name__}"
            )
        if spec == "":
            return cls(spec, PathSpecGroup.ROOT, "")
        if spec.startswith("^"):
            return cls._parse_regex(spec)
        if "{" in spec or "}" in spec:
            return cls._parse_template(spec)
        if spec.startswith("*."):
            suffix = spec[2:]
            if not suffix or "/" in suffix or "*" in suffix:
                raise PathSpecError(f"Suffix spec {spec!r} must look like '*.ext'")
            return cls(spec, PathSpecGroup.SUFFIX, suffix)
        if not spec.startswith("/"):
            raise PathSpecError(
                f"Path spec {spec!r} must start with '/', '*.' or '^', or be ''"
            )
        if spec == "/":
            return cls(spec, PathSpecGroup.DEFAULT, "")
        if spec.endswith("/*"):
            base = spec[:-2]
            if "*" in base:
                raise PathSpecError(
                    f"Prefix spec {spec!r} may hold '*' only at the end"
                )
            _check_segments(spec, base)
            return cls(spec, PathSpecGroup.PREFIX, base)
        if "*" in spec:
            raise PathSpecError(
                f"Path spec {spec!r}: '*' is allowed only as '/a/*' or '*.ext'"
            )
        _check_segments(spec, spec)
        return cls(spec, PathSpecGroup.EXACT, spec)

    @classmethod
    def _parse_regex(cls, spec: str) -> PathSpec:
        try:
            pattern = re.compile(spec)
        except re.error as exc:
            raise PathSpecError(f"Regex spec {spec!r} does not compile: {exc}") from exc
        return cls(spec, PathSpecGroup.REGEX, spec, pattern)

    @classmethod
    def _parse_template(cls, spec: str) -> PathSpec:
        if not spec.startswith("/"):
            raise PathSpecError(f"Template spec {spec!r} must start with '/'")
        names: set[str] = set()
        parts = []
        for segment in spec[1:].split("/"):
            match = _TEMPLATE_VARIABLE.fullmatch(segment)
            if match:
                name = match.group(1)
                if name in names:
                    raise PathSpecError(
                        f"Template spec {spec!r} names variable {name!r} twice"
                    )
                names.add(name)
                parts.append(f"(?P<{name}>[^/]+)")
            elif "{" in segment or "}" in segment or "*" in segment or not segment:
                raise PathSpecError(
                    f"Template spec {spec!r}: each segment must be literal or one "
                    f"whole '{{name}}' variable, got {segment!r}"
                )
            else:
                parts.append(re.escape(segment))
        pattern = re.compile("/" + "/".join(parts))
        return cls(spec, PathSpecGroup.TEMPLATE, spec, pattern)

    def matches(self, path: str) -> bool:
        """Tell whether this spec matches a canonical ``path``."""
        group = self.group
        if group is PathSpecGroup.ROOT:
            return path in ("", "/")
        if group is PathSpecGroup.EXACT:
            return path == self.base
        if group is PathSpecGroup.PREFIX:
            return path == self.base or path.startswith(self.base + "/")
        if group is PathSpecGroup.SUFFIX:
            return path.rpartition("/")[2].endswith("." + self.base)
        if group is PathSpecGroup.DEFAULT:
            return True
        assert self.pattern is not None
        return self.pattern.fullmatch(path) is not None

    def sort_key(self) -> tuple[int, int, str]:
        """Return the precedence key: lower sorts first and wins."""
        weight = len(self.spec)
        if self.group is PathSpecGroup.TEMPLATE:
            weight = len(_TEMPLATE_VARIABLE.sub("", self.spec))
        return (self.group, -weight, self.spec)


def _check_segments(spec: str, path: str) -> None:
    if "//" in path or "/./" in path + "/" or "/../" in path + "/":
        raise PathSpecError(f"Path spec {spec!r} holds an empty or dot segment")


class _TrieNode(Generic[T]):
    __slots__ = ("children", "value")

    def __init__(self) -> None:
        self.children: dict[str, _TrieNode[T]] = {}
        self.value: tuple[PathSpec, T] | None = None


class PathMappings(Generic[T]):
    """Map path specs to values and find the best match for a path.

    Lookup does not grow with the number of specs for root, exact, prefix,
    suffix and default specs: exact specs are a dict, prefixes a segment
    trie, suffixes a dict tried from the longest candidate. Templates and
    regexes are tried in precedence order; their cost grows with their own
    count only.

    :param entries: ``(spec, value)`` pairs; a spec given twice is an error.
    """

    def __init__(self, entries: Iterable[tuple[PathSpec, T]]) -> None:
        self._root: tuple[PathSpec, T] | None = None
        self._default: tuple[PathSpec, T] | None = None
        self._exact: dict[str, tuple[PathSpec, T]] = {}
        self._suffix: dict[str, tuple[PathSpec, T]] = {}
        self._prefix = _TrieNode[T]()
        middle: list[tuple[PathSpec, T]] = []
        seen: set[str] = set()
        for spec, value in entries:
            if spec.spec in seen:
                raise PathSpecError(f"Path spec {spec.spec!r} is mapped twice")
            seen.add(spec.spec)
            self._add(spec, value, middle)
        middle.sort(key=lambda item: item[0].sort_key())
        self._middle = tuple(middle)
        self._middle_any, self._middle_by_segment = _bucket_middle(middle)

    def _add(self, spec: PathSpec, value: T, middle: list[tuple[PathSpec, T]]) -> None:
        group = spec.group
        if group is PathSpecGroup.ROOT:
            self._root = (spec, value)
        elif group is PathSpecGroup.DEFAULT:
            self._default = (spec, value)
        elif group is PathSpecGroup.EXACT:
            self._exact[spec.base] = (spec, value)
        elif group is PathSpecGroup.SUFFIX:
            self._suffix[spec.base] = (spec, value)
        elif group is PathSpecGroup.PREFIX:
            node = self._prefix
            for segment in _segments(spec.base):
                node = node.children.setdefault(segment, _TrieNode())
            node.value = (spec, value)
        else:
            middle.append((spec, value))

    def match(self, path: str) -> tuple[PathSpec, T] | None:
        """Return the best ``(spec, value)`` for a canonical path, or ``None``."""
        if self._root is not None and (path == "/" or path == ""):
            return self._root
        found = self._exact.get(path)
        if found is not None:
            return found
        first = path[1:].partition("/")[0]
        for spec, value in self._middle_by_segment.get(first, self._middle_any):
            assert spec.pattern is not None
            if spec.pattern.fullmatch(path) is not None:
                return spec, value
        found = self._match_prefix(path)
        if found is not None:
            return found
        if self._suffix:
            found = self._match_suffix(path)
            if found is not None:
                return found
        return self._default

    def _match_prefix(self, path: str) -> tuple[PathSpec, T] | None:
        node = self._prefix
        best = node.value
        for segment in _segments(path):
            child = node.children.get(segment)
            if child is None:
                break
            node = child
            if node.value is not None:
                best = node.value
        return best

    def _match_suffix(self, path: str) -> tuple[PathSpec, T] | None:
        last = path.rpartition("/")[2]
        dot = last.find(".")
        while dot != -1:
            found = self._suffix.get(last[dot + 1 :])
            if found is not None:
                return found
            dot = last.find(".", dot + 1)
        return None

    def specs(self) -> list[PathSpec]:
        """Return every mapped spec, best precedence first."""
        found = [spec for spec, _ in self._items()]
        return sorted(found, key=PathSpec.sort_key)

    def _items(self) -> Iterable[tuple[PathSpec, T]]:
        if self._root is not None:
            yield self._root
        yield from self._exact.values()
        yield from self._middle
        stack = [self._prefix]
        while stack:
            node = stack.pop()
            if node.value is not None:
                yield node.value
            stack.extend(node.children.values())
        yield from self._suffix.values()
        if self._default is not None:
            yield self._default


def _bucket_middle(
    middle: list[tuple[PathSpec, T]],
) -> tuple[tuple[tuple[PathSpec, T], ...], dict[str, tuple[tuple[PathSpec, T], ...]]]:
    """Split templates and regexes by a template's literal first segment.

    A path can only match a template whose first segment is literal if its
    own first segment is that literal, so lookup scans that bucket plus the
    specs with no literal first segment (regexes, ``/{x}/...``), still in
    precedence order, instead of every template.
    """
    shared = [item for item in middle if _first_literal(item[0]) is None]
    keyed: dict[str, list[tuple[PathSpec, T]]] = {}
    for item in middle:
        first = _first_literal(item[0])
        if first is not None:
            keyed.setdefault(first, []).append(item)
    buckets = {
        first: tuple(sorted(items + shared, key=lambda item: item[0].sort_key()))
        for first, items in keyed.items()
    }
    return tuple(shared), buckets


def _first_literal(spec: PathSpec) -> str | None:
    if spec.group is not PathSpecGroup.TEMPLATE:
        return None
    first = spec.spec[1:].partition("/")[0]
    return None if "{" in first else first


def _segments(path: str) -> list[str]:
    """Split ``/a/b`` into ``["a", "b"]``; ``""`` and ``/`` give ``[]``."""
    stripped = path[1:] if path.startswith("/") else path
    return stripped.split("/") if stripped else []
