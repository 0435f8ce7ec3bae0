"""Path specs and PathMappings: forms, matching and precedence (DESIGN section 2)."""

from __future__ import annotations

import re

import pytest

from securityhandler.errors import PathSpecError
from securityhandler.pathspec import PathMappings, PathSpec, PathSpecGroup


@pytest.mark.parametrize(
    ("spec", "group", "base"),
    [
        pytest.param("", PathSpecGroup.ROOT, "", id="root"),
        pytest.param("/", PathSpecGroup.DEFAULT, "", id="default"),
        pytest.param("/a/b", PathSpecGroup.EXACT, "/a/b", id="exact"),
        pytest.param("/a/*", PathSpecGroup.PREFIX, "/a", id="prefix"),
        pytest.param("/*", PathSpecGroup.PREFIX, "", id="prefix-everything"),
        pytest.param("*.gz", PathSpecGroup.SUFFIX, "gz", id="suffix"),
        pytest.param("*.tar.gz", PathSpecGroup.SUFFIX, "tar.gz", id="suffix-double"),
        pytest.param("^/v[0-9]+/.*", PathSpecGroup.REGEX, "^/v[0-9]+/.*", id="regex"),
        pytest.param("/u/{id}", PathSpecGroup.TEMPLATE, "/u/{id}", id="template"),
    ],
)
def test_pathspec_parse_forms(spec: str, group: PathSpecGroup, base: str) -> None:
    parsed = PathSpec.parse(spec)
    assert parsed.group is group
    assert parsed.base == base


@pytest.mark.parametrize(
    "spec",
    [
        pytest.param("a/b", id="relative"),
        pytest.param("/a*", id="star-inside-segment"),
        pytest.param("/*/b", id="star-not-last"),
        pytest.param("/a/*/*", id="two-stars"),
        pytest.param("*.", id="empty-suffix"),
        pytest.param("**.x", id="double-star-suffix"),
        pytest.param("*.a/b", id="suffix-with-slash"),
        pytest.param("/a/{x}{y}", id="two-variables-one-segment"),
        pytest.param("/a/{x}/{x}", id="variable-twice"),
        pytest.param("/a/x{y}", id="variable-part-of-segment"),
        pytest.param("^(", id="regex-not-compiling"),
        pytest.param("/a//b", id="empty-segment"),
        pytest.param("/a/../b", id="dot-dot-segment"),
    ],
)
def test_pathspec_invalid_rejected(spec: str) -> None:
    with pytest.raises(PathSpecError, match=re.escape(repr(spec))):
        PathSpec.parse(spec)


def test_pathspec_non_string_rejected() -> None:
    with pytest.raises(PathSpecError, match="string"):
        PathSpec.parse(42)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("spec", "path", "expected"),
    [
        pytest.param("", "/", True, id="root-slash"),
        pytest.param("", "/a", False, id="root-not-below"),
        pytest.param("/a/b", "/a/b", True, id="exact"),
        pytest.param("/a/b", "/a/b/", False, id="exact-not-trailing-slash"),
        pytest.param("/a/b", "/A/B", False, id="exact-case-sensitive"),
        pytest.param("/a/*", "/a", True, id="prefix-bare"),
        pytest.param("/a/*", "/a/", True, id="prefix-slash"),
        pytest.param("/a/*", "/a/b/c", True, id="prefix-below"),
        pytest.param("/a/*", "/ab", False, id="prefix-not-sibling"),
        pytest.param("/a/*", "/A/b", False, id="prefix-case-sensitive"),
        pytest.param("*.gz", "/x/f.gz", True, id="suffix"),
        pytest.param("*.gz", "/x.gz/f", False, id="suffix-only-last-segment"),
        pytest.param("*.gz", "/x/f.GZ", False, id="suffix-case-sensitive"),
        pytest.param("*.gz", "/x/fgz", False, id="suffix-needs-dot"),
        pytest.param("*.tar.gz", "/f.tar.gz", True, id="suffix-double"),
        pytest.param("*.tar.gz", "/f.gz", False, id="suffix-double-not-single"),
        pytest.param("/", "/anything/at/all", True, id="default"),
        pytest.param("^/a$", "/a", True, id="regex-anchored"),
        pytest.param("^/a$", "/a\n", False, id="regex-no-newline-before-end"),
        pytest.param("^/a.*", "/a\n", False, id="regex-dot-not-newline"),
        pytest.param("^/a", "/ab", False, id="regex-whole-path"),
        pytest.param("^/v[0-9]+/.*", "/v2/x", True, id="regex-match"),
        pytest.param("^/v[0-9]+/.*", "/v2", False, id="regex-no-match"),
        pytest.param("/u/{id}", "/u/42", True, id="template-one-segment"),
        pytest.param("/u/{id}", "/u/4/2", False, id="template-not-two-segments"),
        pytest.param("/u/{id}", "/u/", False, id="template-not-empty"),
        pytest.param("/u/{id}", "/u", False, id="template-needs-segment"),
        pytest.param("/u/{a}/p/{b}", "/u/1/p/2", True, id="template-two-variables"),
        pytest.param("/u/{a}/p/{b}", "/u/1/p", False, id="template-missing-variable"),
        pytest.param("/a.b/{x}", "/aXb/1", False, id="template-literal-escaped"),
    ],
)
def test_pathspec_matches(spec: str, path: str, expected: bool) -> None:
    assert PathSpec.parse(spec).matches(path) is expected


_ALL_SPECS = [
    "",
    "/a/b",
    "/u/{id}",
    "^/v[0-9]+/.*",
    "/a/*",
    "/a/b/*",
    "/u/*",
    "/v1/*",
    "*.gz",
    "*.tar.gz",
    "/",
]


def _mappings(specs: list[str]) -> PathMappings[str]:
    return PathMappings((PathSpec.parse(spec), spec) for spec in specs)


def _winner(mappings: PathMappings[str], path: str) -> str | None:
    """Return the spec text that wins for ``path``, or ``None``."""
    found = mappings.match(path)
    return None if found is None else found[1]


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        pytest.param("/", "", id="root-beats-default"),
        pytest.param("/a/b", "/a/b", id="exact-beats-prefixes"),
        pytest.param("/u/42", "/u/{id}", id="template-beats-prefix"),
        pytest.param("/u/42/x", "/u/*", id="template-one-segment-then-prefix"),
        pytest.param("/v1/x", "^/v[0-9]+/.*", id="regex-beats-prefix"),
        pytest.param("/a/b/c", "/a/b/*", id="longest-prefix"),
        pytest.param("/a/bc", "/a/*", id="prefix-segment-boundary"),
        pytest.param("/a", "/a/*", id="prefix-bare"),
        pytest.param("/a/", "/a/*", id="prefix-trailing-slash"),
        pytest.param("/a/b/f.gz", "/a/b/*", id="prefix-beats-suffix"),
        pytest.param("/x/f.tar.gz", "*.tar.gz", id="longer-suffix"),
        pytest.param("/x/f.gz", "*.gz", id="shorter-suffix"),
        pytest.param("/x.gz/f", "/", id="suffix-last-segment-only"),
        pytest.param("/ab", "/", id="no-sibling-prefix"),
        pytest.param("/A/B", "/", id="case-sensitive"),
        pytest.param("/elsewhere", "/", id="default"),
    ],
)
@pytest.mark.parametrize(
    "order", [pytest.param(1, id="declared"), pytest.param(-1, id="reversed")]
)
def test_pathmappings_precedence(path: str, expected: str, order: int) -> None:
    assert _winner(_mappings(_ALL_SPECS[::order]), path) == expected


def test_pathmappings_root_only_slash() -> None:
    mappings = _mappings(["", "/a/*"])
    assert _winner(mappings, "/") == ""
    assert _winner(mappings, "/b") is None


def test_pathmappings_prefix_everything_covers_root_path() -> None:
    mappings = _mappings(["/*", "*.gz"])
    assert _winner(mappings, "/x/f.gz") == "/*"
    assert _winner(mappings, "/") == "/*"


def test_pathmappings_regex_rejects_newline_trick() -> None:
    mappings = _mappings(["^/a$", "/"])
    assert _winner(mappings, "/a\n") == "/"
    assert _winner(mappings, "/a") == "^/a$"


@pytest.mark.parametrize(
    ("specs", "path", "expected"),
    [
        pytest.param(["/u/{a}/x", "/u/{a}/{b}"], "/u/1/x", "/u/{a}/x", id="literal"),
        pytest.param(
            ["/u/{a}/{b}", "/u/{a}/x"], "/u/1/x", "/u/{a}/x", id="literal-rev"
        ),
        pytest.param(["/u/{a}/x", "/u/{b}/x"], "/u/1/x", "/u/{a}/x", id="tie"),
        pytest.param(["/u/{b}/x", "/u/{a}/x"], "/u/1/x", "/u/{a}/x", id="tie-rev"),
    ],
)
def test_pathmappings_templates_order_independent(
    specs: list[str], path: str, expected: str
) -> None:
    # The pathspec docstring: more literal characters win, then sort order.
    assert _winner(_mappings(specs), path) == expected


def test_pathmappings_no_match_without_default() -> None:
    assert _winner(_mappings(["/a/*", "/b"]), "/c") is None


def test_pathmappings_duplicate_spec_rejected() -> None:
    with pytest.raises(PathSpecError, match=re.escape("'/a/*'")):
        _mappings(["/a/*", "/a/*"])


def test_pathmappings_specs_in_precedence_order() -> None:
    specs = [spec.spec for spec in _mappings(_ALL_SPECS[::-1]).specs()]
    assert specs[0] == ""
    assert specs[-1] == "/"
    assert specs.index("/a/b/*") < specs.index("/a/*") < specs.index("*.tar.gz")


_MANY = 5000


@pytest.fixture(scope="module")
def many_mappings() -> PathMappings[str]:
    specs = [f"/items/{i}" for i in range(_MANY)]
    specs += [f"/items/{i}/*" for i in range(_MANY)]
    return _mappings([*specs, "/"])


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        pytest.param("/items/7", "/items/7", id="exact-beats-own-prefix"),
        pytest.param("/items/7/", "/items/7/*", id="prefix-trailing-slash"),
        pytest.param("/items/7/x/y", "/items/7/*", id="prefix-below"),
        pytest.param("/items/70/x", "/items/70/*", id="no-shorter-number"),
        pytest.param("/items/4999/x", "/items/4999/*", id="last-prefix"),
        pytest.param("/items/5000/x", "/", id="beyond-range"),
        pytest.param("/items/07/x", "/", id="leading-zero-differs"),
        pytest.param("/items", "/", id="parent"),
    ],
)
def test_pathmappings_ten_thousand_specs(
    many_mappings: PathMappings[str], path: str, expected: str
) -> None:
    assert _winner(many_mappings, path) == expected
