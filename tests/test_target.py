"""Request targets: strict canonicalisation before matching (DESIGN section 2)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from werkzeug.wrappers import Response

from securityhandler._target import (
    AmbiguousTargetError,
    canonical_path,
    canonical_target,
)
from securityhandler.constraints import Constraint, ConstraintMapping
from securityhandler.handler import ConstraintSecurityHandler

RawEnviron = Callable[..., dict[str, Any]]
CallWsgi = Callable[[Any, dict[str, Any]], Response]

_REFUSED = [
    pytest.param("/a/%2e/b", "encoded_dot_segment", id="encoded-dot"),
    pytest.param("/a/%2E%2E/b", "encoded_dot_segment", id="encoded-dot-dot-upper"),
    pytest.param("/a/%2e%2e/b", "encoded_dot_segment", id="encoded-dot-dot-lower"),
    pytest.param("/a/.%2e/b", "encoded_dot_segment", id="half-encoded-dot-dot"),
    pytest.param("/a/%2e", "encoded_dot_segment", id="encoded-dot-last"),
    pytest.param("/a/..;/b", "dot_segment_parameter", id="dot-dot-empty-param"),
    pytest.param("/a/..;x=1/b", "dot_segment_parameter", id="dot-dot-param"),
    pytest.param("/a/.;x/b", "dot_segment_parameter", id="dot-param"),
    pytest.param("/a%2Fb", "encoded_separator", id="encoded-slash-upper"),
    pytest.param("/a%2fb", "encoded_separator", id="encoded-slash-lower"),
    pytest.param("/a%25b", "encoded_percent", id="encoded-percent"),
    pytest.param("/a/%252e%252e/b", "encoded_percent", id="double-encoded-dot"),
    pytest.param("/a%u002e", "utf16_encoding", id="percent-u"),
    pytest.param("/a/%U002E%U002E/b", "utf16_encoding", id="percent-u-upper"),
    pytest.param("/a//b", "empty_segment", id="double-slash-inside"),
    pytest.param("//a", "empty_segment", id="leading-double-slash"),
    pytest.param("//", "empty_segment", id="only-double-slash"),
    pytest.param("/a/;x/b", "empty_segment", id="empty-segment-param"),
    pytest.param("/a\\b", "backslash", id="backslash"),
    pytest.param("/a%5Cb", "backslash", id="encoded-backslash-upper"),
    pytest.param("/a/..%5c..", "backslash", id="encoded-backslash-lower"),
    pytest.param("/a\x01b", "control_character", id="raw-control"),
    pytest.param("/a\tb", "control_character", id="raw-tab"),
    pytest.param("/a\x7fb", "control_character", id="raw-delete"),
    pytest.param("/a%00b", "control_character", id="encoded-nul"),
    pytest.param("/a%0a", "control_character", id="encoded-lf"),
    pytest.param("/a%0D%0Ab", "control_character", id="encoded-crlf"),
    pytest.param("/a%7f", "control_character", id="encoded-delete"),
    pytest.param("/%ff", "invalid_utf8", id="invalid-utf8-byte"),
    pytest.param("/%C0%AF", "invalid_utf8", id="overlong-slash"),
    pytest.param("/caf%C3", "invalid_utf8", id="truncated-utf8"),
    pytest.param("/caf\xe9", "invalid_utf8", id="raw-latin1-byte"),
    pytest.param("/%zz", "bad_percent_encoding", id="bad-escape"),
    pytest.param("/a%", "bad_percent_encoding", id="trailing-percent"),
    pytest.param("/a%4", "bad_percent_encoding", id="short-escape"),
    pytest.param("/a%4g", "bad_percent_encoding", id="half-hex-escape"),
    pytest.param("/..", "above_root", id="dot-dot-at-root"),
    pytest.param("/a/../..", "above_root", id="dot-dot-twice"),
    pytest.param("/../a", "above_root", id="dot-dot-first"),
    pytest.param("/./..", "above_root", id="dot-then-dot-dot"),
    pytest.param("/a#frag", "fragment", id="fragment"),
]


@pytest.mark.parametrize(("raw_path", "reason"), _REFUSED)
def test_canonical_path_refused(raw_path: str, reason: str) -> None:
    with pytest.raises(AmbiguousTargetError) as caught:
        canonical_path(raw_path)
    assert caught.value.reason == reason


@pytest.mark.parametrize(
    ("raw_path", "expected"),
    [
        pytest.param("/", "/", id="root"),
        pytest.param("/a/b", "/a/b", id="plain"),
        pytest.param("/a/b/", "/a/b/", id="trailing-slash-kept"),
        pytest.param("/a/./b", "/a/b", id="dot"),
        pytest.param("/a/b/../c", "/a/c", id="dot-dot"),
        pytest.param("/a/b/..", "/a/", id="dot-dot-last"),
        pytest.param("/a/.", "/a/", id="dot-last"),
        pytest.param("/a/..", "/", id="dot-dot-to-root"),
        pytest.param("/a/b/./", "/a/b/", id="dot-before-slash"),
        pytest.param("/a/b/c/../../d", "/a/d", id="two-dot-dots"),
        pytest.param("/a;x=1/b", "/a/b", id="params-stripped"),
        pytest.param("/a/b;jsessionid=1", "/a/b", id="params-stripped-last"),
        pytest.param("/a;x/../b", "/b", id="params-then-dot-dot"),
        pytest.param("/caf%C3%A9", "/café", id="utf8-escaped"),
        pytest.param("/caf%c3%a9", "/café", id="utf8-escaped-lower"),
        pytest.param("/caf\xc3\xa9", "/café", id="utf8-raw-bytes"),
        pytest.param("/a%20b", "/a b", id="escaped-space"),
        pytest.param("/%41%7E", "/A~", id="escaped-unreserved"),
        pytest.param("/a%3Bb", "/a;b", id="escaped-semicolon-is-data"),
        pytest.param("/a.b/c..d", "/a.b/c..d", id="dots-inside-segments"),
        pytest.param("/a/...", "/a/...", id="three-dots-ordinary"),
        pytest.param("/.well-known/x", "/.well-known/x", id="dot-prefixed-name"),
    ],
)
def test_canonical_path_resolved(raw_path: str, expected: str) -> None:
    assert canonical_path(raw_path) == expected


@pytest.mark.parametrize(
    ("raw_target", "script_name", "path", "path_info"),
    [
        pytest.param("/a/./b?x=1", "", "/a/b", "/a/b", id="resolved"),
        pytest.param("/caf%C3%A9", "", "/café", "/caf\xc3\xa9", id="non-ascii"),
        pytest.param("/app/b", "/app", "/b", "/b", id="script-name"),
        pytest.param("/app", "/app", "", "", id="script-name-only"),
        pytest.param("/app/", "/app", "/", "/", id="script-name-slash"),
        pytest.param("/app/./b/../c", "/app", "/c", "/c", id="script-name-dots"),
        pytest.param("/x/../app/b", "/app", "/b", "/b", id="climbs-into-app"),
        pytest.param("http://h/a/b?q", "", "/a/b", "/a/b", id="absolute-form"),
        pytest.param("https://h:8443/a", "", "/a", "/a", id="absolute-form-port"),
        pytest.param("http://h", "", "/", "/", id="absolute-form-no-path"),
    ],
)
@pytest.mark.parametrize("raw_key", ["RAW_URI", "REQUEST_URI"])
def test_canonical_target_sets_path_info(
    raw_environ: RawEnviron,
    raw_target: str,
    script_name: str,
    path: str,
    path_info: str,
    raw_key: str,
) -> None:
    environ = raw_environ(raw_target, script_name=script_name, raw_key=raw_key)
    assert canonical_target(environ).path == path
    assert environ["PATH_INFO"] == path_info


@pytest.mark.parametrize(
    ("raw_target", "script_name"),
    [
        pytest.param("/app/../x", "/app", id="climbs-out"),
        pytest.param("/appx", "/app", id="not-segment-boundary"),
        pytest.param("/appx/y", "/app", id="not-segment-boundary-below"),
        pytest.param("/", "/app", id="above-app"),
        pytest.param("/other/b", "/app", id="other-prefix"),
    ],
)
def test_canonical_target_outside_script_name(
    raw_environ: RawEnviron, raw_target: str, script_name: str
) -> None:
    environ = raw_environ(raw_target, script_name=script_name)
    with pytest.raises(AmbiguousTargetError) as caught:
        canonical_target(environ)
    assert caught.value.reason == "outside_script_name"


def test_canonical_target_query_kept(raw_environ: RawEnviron) -> None:
    target = canonical_target(raw_environ("/a;p=1/b?x=1&y=%2F"))
    assert target.query == "x=1&y=%2F"
    assert target.raw_path == "/a;p=1/b"


@pytest.mark.parametrize(
    ("path_info", "query", "expected"),
    [
        pytest.param("/a/b", "x=1", "/a/b", id="plain"),
        pytest.param("/a/../b", "", "/b", id="dot-dot"),
        pytest.param("/caf\xc3\xa9", "", "/café", id="non-ascii"),
    ],
)
def test_canonical_target_falls_back_to_path_info(
    raw_environ: RawEnviron, path_info: str, query: str, expected: str
) -> None:
    environ = raw_environ("/", raw_key=None)
    environ.update(PATH_INFO=path_info, QUERY_STRING=query)
    target = canonical_target(environ)
    assert (target.path, target.query) == (expected, query)


@pytest.mark.parametrize(
    "path_info",
    [
        pytest.param("/a/../..", id="above-root"),
        pytest.param("/a\\b", id="backslash"),
        pytest.param("/a%b", id="decoded-percent"),
        pytest.param("/a\x00b", id="nul"),
        pytest.param("/a//b", id="double-slash"),
    ],
)
def test_canonical_target_fallback_refused(
    raw_environ: RawEnviron, path_info: str
) -> None:
    environ = raw_environ("/", raw_key=None)
    environ["PATH_INFO"] = path_info
    with pytest.raises(AmbiguousTargetError):
        canonical_target(environ)


# Through the handler.


@pytest.fixture
def handler(recording_app: Any) -> ConstraintSecurityHandler:
    """Guard /admin/* and /café; everything else is open."""
    return ConstraintSecurityHandler(
        recording_app,
        [
            ConstraintMapping(("/admin/*",), Constraint.forbidden(name="admin")),
            ConstraintMapping(("/café",), Constraint.forbidden(name="cafe")),
            ConstraintMapping(("/",), Constraint.allowed(name="open")),
        ],
    )


@pytest.mark.parametrize(("raw_target", "reason"), _REFUSED)
def test_handler_ambiguous_target_400(
    handler: ConstraintSecurityHandler,
    recording_app: Any,
    raw_environ: RawEnviron,
    call_wsgi: CallWsgi,
    raw_target: str,
    reason: str,
) -> None:
    response = call_wsgi(handler, raw_environ(raw_target))
    assert response.status_code == 400
    assert not recording_app.called
    assert reason.encode() not in response.get_data()


@pytest.mark.parametrize(
    ("raw_target", "expected"),
    [
        pytest.param("/public/../admin/x", 403, id="dot-dot-into-admin"),
        pytest.param("/admin;x=1/x", 403, id="params-on-admin"),
        pytest.param("/./admin/x", 403, id="dot-before-admin"),
        pytest.param("http://h/admin/x", 403, id="absolute-form-admin"),
        pytest.param("/caf%C3%A9", 403, id="utf8-matches-decoded-spec"),
        pytest.param("/caf%c3%a9;v=1", 403, id="utf8-lower-with-param"),
        pytest.param("/Admin/x", 200, id="case-sensitive"),
        pytest.param("/admin/../public", 200, id="dot-dot-out-of-admin"),
        pytest.param("/cafe", 200, id="ascii-lookalike"),
    ],
)
def test_handler_matches_canonical_path(
    handler: ConstraintSecurityHandler,
    raw_environ: RawEnviron,
    call_wsgi: CallWsgi,
    raw_target: str,
    expected: int,
) -> None:
    assert call_wsgi(handler, raw_environ(raw_target)).status_code == expected


@pytest.mark.parametrize(
    ("raw_target", "path_info"),
    [
        pytest.param("/a/./b", "/a/b", id="dot"),
        pytest.param("/a/b/../c", "/a/c", id="dot-dot"),
        pytest.param("/a/b/..", "/a/", id="dot-dot-last"),
        pytest.param("/a;x=1/b", "/a/b", id="params"),
        pytest.param("/x/caf%C3%A9", "/x/caf\xc3\xa9", id="non-ascii-wsgi-string"),
    ],
)
def test_handler_app_sees_canonical_path(
    handler: ConstraintSecurityHandler,
    recording_app: Any,
    raw_environ: RawEnviron,
    call_wsgi: CallWsgi,
    raw_target: str,
    path_info: str,
) -> None:
    assert call_wsgi(handler, raw_environ(raw_target)).status_code == 200
    assert recording_app.last.path_info == path_info


@pytest.mark.parametrize(
    ("raw_target", "expected", "path_info"),
    [
        pytest.param("/app/b", 200, "/b", id="inside"),
        pytest.param("/app/admin/x", 403, None, id="inside-guarded"),
        pytest.param("/app/../x", 400, None, id="climbs-out"),
        pytest.param("/appx", 400, None, id="not-segment-boundary"),
        pytest.param("/x/../app/admin/x", 403, None, id="climbs-in-guarded"),
    ],
)
def test_handler_script_name(
    handler: ConstraintSecurityHandler,
    recording_app: Any,
    raw_environ: RawEnviron,
    call_wsgi: CallWsgi,
    raw_target: str,
    expected: int,
    path_info: str | None,
) -> None:
    response = call_wsgi(handler, raw_environ(raw_target, script_name="/app"))
    assert response.status_code == expected
    seen = recording_app.last.path_info if recording_app.called else None
    assert seen == path_info


def test_handler_fallback_to_path_info(
    handler: ConstraintSecurityHandler,
    raw_environ: RawEnviron,
    call_wsgi: CallWsgi,
) -> None:
    environ = raw_environ("/", raw_key=None)
    environ["PATH_INFO"] = "/public/../admin/x"
    assert call_wsgi(handler, environ).status_code == 403


def test_handler_bad_request_body_generic(
    handler: ConstraintSecurityHandler,
    raw_environ: RawEnviron,
    call_wsgi: CallWsgi,
) -> None:
    dots = call_wsgi(handler, raw_environ("/a/%2e%2e/b")).get_data()
    slash = call_wsgi(handler, raw_environ("/a%2Fb")).get_data()
    assert dots == slash
