"""Constraint combination, method coverage and the Servlet 13.8.2 example."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from typing import Any

import pytest
from werkzeug.test import Client

from securityhandler.authentication import BasicAuthenticator
from securityhandler.constraints import (
    UNCOVERED,
    Authorization,
    Constraint,
    ConstraintMapping,
    ConstraintMappings,
    RoleInfo,
    Transport,
    combine,
)
from securityhandler.errors import ConfigError
from securityhandler.handler import ConstraintSecurityHandler

SECURE = Transport.SECURE
FORBIDDEN = Authorization.FORBIDDEN
ALLOWED = Authorization.ALLOWED
ANY_USER = Authorization.ANY_USER
KNOWN_ROLE = Authorization.KNOWN_ROLE
ROLES = Authorization.SPECIFIC_ROLE


def _summary(info: RoleInfo) -> tuple[Authorization | None, frozenset[str], bool]:
    return info.authorization, info.roles, info.secure


def _in_every_order(
    cases: Sequence[tuple[str, Sequence[Any], Any]],
) -> list[Any]:
    """Turn ``(id, items, expected)`` cases into one param per permutation."""
    params = []
    for case_id, items, expected in cases:
        for number, order in enumerate(itertools.permutations(items)):
            params.append(pytest.param(order, expected, id=f"{case_id}-{number}"))
    return params


def _roles(*names: str, secure: bool = False) -> Constraint:
    return Constraint.with_roles(*names, transport=SECURE if secure else Transport.ANY)


def _want(
    authorization: Authorization | None, roles: str = "", secure: bool = False
) -> tuple[Authorization | None, frozenset[str], bool]:
    """Return the expected RoleInfo summary; ``roles`` are one letter each."""
    return authorization, frozenset(roles), secure


_FORBID = Constraint.forbidden()
_ALLOW = Constraint.allowed()
_ALLOW_TLS = Constraint.allowed(transport=SECURE)
_ANY = Constraint.any_user()
_KNOWN_ROLE = Constraint.known_role()

_COMBINATIONS = [
    ("forbidden-allowed", [_FORBID, _ALLOW], _want(FORBIDDEN)),
    ("forbidden-roles", [_FORBID, _roles("a")], _want(FORBIDDEN)),
    ("forbidden-any-user", [_FORBID, _ANY], _want(FORBIDDEN)),
    ("forbidden-known", [_FORBID, _KNOWN_ROLE], _want(FORBIDDEN)),
    ("allowed-roles", [_ALLOW, _roles("a")], _want(ALLOWED)),
    ("allowed-any-user", [_ALLOW, _ANY], _want(ALLOWED)),
    ("allowed-known", [_ALLOW, _KNOWN_ROLE], _want(ALLOWED)),
    ("any-user-known", [_ANY, _KNOWN_ROLE], _want(ANY_USER)),
    ("any-user-roles", [_ANY, _roles("a")], _want(ANY_USER)),
    ("known-roles", [_KNOWN_ROLE, _roles("a")], _want(KNOWN_ROLE)),
    ("roles-union", [_roles("a"), _roles("b", "c")], _want(ROLES, "abc")),
    ("roles-overlap", [_roles("a", "b"), _roles("b")], _want(ROLES, "ab")),
    (
        "secure-secure",
        [_roles("a", secure=True), _roles("b", secure=True)],
        _want(ROLES, "ab", secure=True),
    ),
    ("secure-any", [_roles("a", secure=True), _roles("b")], _want(ROLES, "ab")),
    (
        "allowed-secure-roles-secure",
        [_ALLOW_TLS, _roles("a", secure=True)],
        _want(ALLOWED, secure=True),
    ),
    ("allowed-secure-any-user", [_ALLOW_TLS, _ANY], _want(ALLOWED)),
    ("three-forbidden-wins", [_roles("a"), _ALLOW, _FORBID], _want(FORBIDDEN)),
    ("three-any-user-wins", [_roles("a"), _KNOWN_ROLE, _ANY], _want(ANY_USER)),
    (
        "three-roles-one-insecure",
        [_roles("a", secure=True), _roles("b", secure=True), _roles("c")],
        _want(ROLES, "abc"),
    ),
]


@pytest.mark.parametrize(("constraints", "expected"), _in_every_order(_COMBINATIONS))
def test_combine_any_order(
    constraints: Sequence[Constraint],
    expected: tuple[Authorization, frozenset[str], bool],
) -> None:
    assert _summary(combine(constraints)) == expected


@pytest.mark.parametrize(
    ("constraint", "expected"),
    [
        pytest.param(_roles("a", secure=True), _want(ROLES, "a", True), id="roles"),
        pytest.param(_ALLOW, _want(ALLOWED), id="allowed"),
        pytest.param(_ALLOW_TLS, _want(ALLOWED, secure=True), id="allowed-secure"),
    ],
)
def test_combine_single_constraint_kept(
    constraint: Constraint, expected: tuple[Authorization, frozenset[str], bool]
) -> None:
    assert _summary(combine([constraint])) == expected


def test_combine_nothing_is_uncovered() -> None:
    info = combine([])
    assert info.uncovered
    assert info == UNCOVERED


def test_combine_names_every_constraint() -> None:
    first = Constraint.with_roles("a", name="one")
    second = Constraint.with_roles("b", name="two")
    assert combine([second, first]).constraints == ("one", "two")
    assert combine([first, second]).constraints == ("one", "two")


def _both_lists() -> ConstraintMapping:
    return _mapping("/a", _ALLOW, ["GET"], ["POST"])


@pytest.mark.parametrize(
    ("build", "message"),
    [
        pytest.param(Constraint.with_roles, "forbidden", id="roles-empty"),
        pytest.param(
            lambda: Constraint(ALLOWED, frozenset({"a"})), "allowed", id="roles-allowed"
        ),
        pytest.param(_both_lists, "omit_methods", id="methods-and-omissions"),
        pytest.param(lambda: _mapping("/a", _ALLOW, ["GE T"]), "GE T", id="bad-method"),
        pytest.param(lambda: ConstraintMapping((), _ALLOW), "path spec", id="no-paths"),
    ],
)
def test_constraint_invalid_rejected(build: Callable[[], object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        build()


def _mapping(
    path: str,
    constraint: Constraint,
    methods: Sequence[str] = (),
    omit: Sequence[str] = (),
) -> ConstraintMapping:
    return ConstraintMapping((path,), constraint, frozenset(methods), frozenset(omit))


def _info(mappings: Sequence[ConstraintMapping], path: str, method: str) -> RoleInfo:
    entry = ConstraintMappings(mappings).find(path)
    assert entry is not None
    return entry.role_info(method)


_METHOD_CASES = [
    (
        "method-roles-all-roles",
        [_mapping("/x", _roles("a"), ["GET"]), _mapping("/x", _roles("b"))],
        {"GET": _want(ROLES, "ab"), "POST": _want(ROLES, "b")},
    ),
    (
        "method-forbidden-all-allowed",
        [_mapping("/x", _FORBID, ["DELETE"]), _mapping("/x", _ALLOW)],
        {"DELETE": _want(FORBIDDEN), "GET": _want(ALLOWED)},
    ),
    (
        "method-allowed-all-roles",
        [_mapping("/x", _ALLOW, ["GET"]), _mapping("/x", _roles("a"))],
        {"GET": _want(ALLOWED), "PUT": _want(ROLES, "a")},
    ),
    (
        "method-secure-all-any",
        [
            _mapping("/x", _roles("a", secure=True), ["POST"]),
            _mapping("/x", _roles("b")),
        ],
        {"POST": _want(ROLES, "ab"), "GET": _want(ROLES, "b")},
    ),
    (
        "method-roles-omission-roles",
        [
            _mapping("/x", _roles("a"), ["PUT"]),
            _mapping("/x", _roles("b"), omit=["GET"]),
        ],
        {"PUT": _want(ROLES, "ab"), "POST": _want(ROLES, "b"), "GET": _want(None)},
    ),
    (
        "method-in-omission-list",
        [_mapping("/x", _roles("a"), ["GET"]), _mapping("/x", _FORBID, omit=["GET"])],
        {"GET": _want(ROLES, "a"), "POST": _want(FORBIDDEN)},
    ),
    (
        "named-substring-of-omitted",
        [
            _mapping("/x", _roles("a"), ["GE", "GETX"]),
            _mapping("/x", _FORBID, omit=["GET"]),
        ],
        {"GE": _want(FORBIDDEN), "GETX": _want(FORBIDDEN), "GET": _want(None)},
    ),
    (
        "two-method-entries",
        [
            _mapping("/x", _roles("a"), ["GET"]),
            _mapping("/x", _roles("b"), ["GET", "POST"]),
        ],
        {"GET": _want(ROLES, "ab"), "POST": _want(ROLES, "b"), "PUT": _want(None)},
    ),
]


@pytest.mark.parametrize(("mappings", "expected"), _in_every_order(_METHOD_CASES))
def test_mappings_method_entries_any_order(
    mappings: Sequence[ConstraintMapping],
    expected: dict[str, tuple[Authorization | None, frozenset[str], bool]],
) -> None:
    got = {method: _summary(_info(mappings, "/x", method)) for method in expected}
    assert got == expected


@pytest.mark.parametrize(
    ("method", "expected"),
    [
        pytest.param("GET", None, id="omitted"),
        pytest.param("GE", FORBIDDEN, id="prefix-of-omitted"),
        pytest.param("GETX", FORBIDDEN, id="extension-of-omitted"),
        pytest.param("ET", FORBIDDEN, id="substring-of-omitted"),
        pytest.param("get", FORBIDDEN, id="lowercase-not-omitted"),
        pytest.param("POST", FORBIDDEN, id="other-method"),
    ],
)
def test_mappings_omission_exact_membership(
    method: str, expected: Authorization | None
) -> None:
    mappings = [_mapping("/x", Constraint.forbidden(), omit=["GET"])]
    assert _info(mappings, "/x", method).authorization is expected


@pytest.mark.parametrize(
    ("method", "expected"),
    [
        pytest.param("GET", False, id="listed"),
        pytest.param("GE", True, id="prefix"),
        pytest.param("GETX", True, id="extension"),
        pytest.param("get", True, id="other-case"),
    ],
)
def test_mapping_applies_to_exact_membership(method: str, expected: bool) -> None:
    assert _mapping("/x", _FORBID, omit=["GET"]).applies_to(method) is expected


def test_mappings_nothing_inherited_from_shorter_spec() -> None:
    mappings = [
        _mapping("/", Constraint.forbidden(), ["TRACE"]),
        _mapping("/api/*", Constraint.any_user()),
    ]
    assert _info(mappings, "/api/x", "TRACE").authorization is ANY_USER
    assert _info(mappings, "/other", "TRACE").authorization is FORBIDDEN


def test_mappings_shorter_spec_methods_not_inherited() -> None:
    mappings = [
        _mapping("/", Constraint.forbidden(), ["TRACE"]),
        _mapping("/api/*", Constraint.allowed(), ["GET"]),
    ]
    assert _info(mappings, "/api/x", "TRACE").uncovered
    assert _info(mappings, "/api/x", "GET").authorization is ALLOWED


def test_mappings_no_spec_matches() -> None:
    mappings = ConstraintMappings([_mapping("/api/*", Constraint.any_user())])
    assert mappings.find("/public") is None
    assert mappings.find("/api") is not None


def test_mappings_several_paths_one_constraint() -> None:
    mapping = ConstraintMapping(("/a", "*.jsp"), Constraint.with_roles("r"))
    mappings = ConstraintMappings([mapping])
    assert _summary(_info([mapping], "/a", "GET")) == (ROLES, frozenset("r"), False)
    assert mappings.find("/b/page.jsp") is not None


# Through the handler: what a client sees.

USERS = {
    "sally": ("s-pw", ["SALESCLERK"]),
    "carl": ("c-pw", ["CONTRACTOR"]),
    "hank": ("h-pw", ["HOMEOWNER"]),
    "gus": ("g-pw", ["GUEST"]),
    "ann": ("a-pw", ["admin"]),
    "oscar": ("o-pw", ["ops"]),
}


@pytest.fixture
def guard(
    recording_app: Any,
    make_login_service: Callable[..., Any],
    make_client: Callable[[Any], Client],
) -> Callable[..., Client]:
    """Return a factory of clients of a handler with Basic auth over USERS."""

    def build(mappings: Sequence[ConstraintMapping], **options: Any) -> Client:
        basic = BasicAuthenticator(make_login_service(USERS), realm="test")
        handler = ConstraintSecurityHandler(recording_app, mappings, [basic], **options)
        return make_client(handler)

    return build


def _auth(user: str | None) -> tuple[str, str] | None:
    return None if user is None else (user, USERS[user][0])


@pytest.mark.parametrize(
    ("deny", "method", "expected"),
    [
        pytest.param(True, "GET", 403, id="deny-omitted-method"),
        pytest.param(False, "GET", 200, id="allow-omitted-method"),
        pytest.param(True, "GE", 403, id="deny-prefix-forbidden"),
        pytest.param(False, "GE", 403, id="allow-prefix-forbidden"),
        pytest.param(False, "GETX", 403, id="allow-extension-forbidden"),
    ],
)
def test_handler_uncovered_methods(
    guard: Callable[..., Client], deny: bool, method: str, expected: int
) -> None:
    client = guard(
        [_mapping("/x", Constraint.forbidden(), omit=["GET"])],
        deny_uncovered_methods=deny,
    )
    assert client.open("/x", method=method).status_code == expected


@pytest.mark.parametrize(
    "deny",
    [pytest.param(True, id="deny-uncovered"), pytest.param(False, id="allow")],
)
def test_handler_no_spec_matches_allowed(
    guard: Callable[..., Client], recording_app: Any, deny: bool
) -> None:
    client = guard(
        [_mapping("/api/*", Constraint.any_user())], deny_uncovered_methods=deny
    )
    assert client.open("/public", method="DELETE").status_code == 200
    assert recording_app.called


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        pytest.param("/api/x", 401, id="own-constraint-asks-credentials"),
        pytest.param("/other", 403, id="default-spec-forbids"),
    ],
)
def test_handler_trace_forbid_not_inherited(
    guard: Callable[..., Client], path: str, expected: int
) -> None:
    client = guard(
        [
            _mapping("/", Constraint.forbidden(), ["TRACE"]),
            _mapping("/api/*", Constraint.any_user()),
        ]
    )
    assert client.open(path, method="TRACE").status_code == expected


def test_handler_trace_uncovered_not_inherited(guard: Callable[..., Client]) -> None:
    client = guard(
        [
            _mapping("/", Constraint.forbidden(), ["TRACE"]),
            _mapping("/api/*", Constraint.allowed(), ["GET"]),
        ],
        deny_uncovered_methods=False,
    )
    assert client.open("/api/x", method="TRACE").status_code == 200
    assert client.open("/x", method="TRACE").status_code == 403


# Servlet 3.1 section 13.8.2, the example and its Table 13-4.

SERVLET_EXAMPLE = [
    ConstraintMapping(
        ("/*", "/acme/wholesale/*", "/acme/retail/*"),
        Constraint.forbidden(name="precluded methods"),
        omit_methods=frozenset({"GET", "POST"}),
    ),
    ConstraintMapping(
        ("/acme/wholesale/*",),
        Constraint.with_roles("SALESCLERK", name="wholesale"),
        methods=frozenset({"GET", "PUT"}),
    ),
    ConstraintMapping(
        ("/acme/wholesale/*",),
        Constraint.with_roles("CONTRACTOR", transport=SECURE, name="wholesale 2"),
        methods=frozenset({"GET", "POST"}),
    ),
    ConstraintMapping(
        ("/acme/retail/*",),
        Constraint.with_roles("CONTRACTOR", "HOMEOWNER", name="retail"),
        methods=frozenset({"GET", "POST"}),
    ),
]

_PRECLUDED = (FORBIDDEN, frozenset(), False)
_UNCOVERED = (None, frozenset(), False)
_CLERK_OR_CONTRACTOR = (ROLES, frozenset({"CONTRACTOR", "SALESCLERK"}), False)
_CONTRACTOR_TLS = (ROLES, frozenset({"CONTRACTOR"}), True)
_CONTRACTOR_OR_OWNER = (ROLES, frozenset({"CONTRACTOR", "HOMEOWNER"}), False)
_WS = "/acme/wholesale/item"
_RT = "/acme/retail/item"


@pytest.mark.parametrize(
    ("path", "method", "expected"),
    [
        pytest.param("/other", "DELETE", _PRECLUDED, id="root-delete"),
        pytest.param("/other", "PUT", _PRECLUDED, id="root-put"),
        pytest.param("/other", "GET", _UNCOVERED, id="root-get-uncovered"),
        pytest.param("/other", "POST", _UNCOVERED, id="root-post-uncovered"),
        pytest.param(_WS, "GET", _CLERK_OR_CONTRACTOR, id="wholesale-get"),
        pytest.param(_WS, "POST", _CONTRACTOR_TLS, id="wholesale-post"),
        pytest.param(_WS, "PUT", _PRECLUDED, id="wholesale-put"),
        pytest.param(_WS, "DELETE", _PRECLUDED, id="wholesale-delete"),
        pytest.param(_WS, "HEAD", _PRECLUDED, id="wholesale-head"),
        pytest.param("/acme/wholesale", "GET", _CLERK_OR_CONTRACTOR, id="ws-bare-get"),
        pytest.param(_RT, "GET", _CONTRACTOR_OR_OWNER, id="retail-get"),
        pytest.param(_RT, "POST", _CONTRACTOR_OR_OWNER, id="retail-post"),
        pytest.param(_RT, "PUT", _PRECLUDED, id="retail-put"),
        pytest.param(_RT, "DELETE", _PRECLUDED, id="retail-delete"),
        pytest.param("/acme/other", "PUT", _PRECLUDED, id="acme-other-put"),
    ],
)
@pytest.mark.parametrize(
    "order", [pytest.param(1, id="declared"), pytest.param(-1, id="reversed")]
)
def test_servlet_example_role_table(
    path: str,
    method: str,
    expected: tuple[Authorization | None, frozenset[str], bool],
    order: int,
) -> None:
    assert _summary(_info(SERVLET_EXAMPLE[::order], path, method)) == expected


def test_servlet_example_known_roles() -> None:
    mappings = ConstraintMappings(SERVLET_EXAMPLE)
    assert mappings.roles() == {"SALESCLERK", "CONTRACTOR", "HOMEOWNER"}


@pytest.mark.parametrize(
    ("method", "path", "user", "scheme", "expected"),
    [
        pytest.param("GET", _WS, "sally", "http", 200, id="ws-get-clerk-http"),
        pytest.param("GET", _WS, "carl", "http", 200, id="ws-get-contractor-http"),
        pytest.param("GET", _WS, "carl", "https", 200, id="ws-get-contractor-https"),
        pytest.param("GET", _WS, "hank", "http", 403, id="ws-get-homeowner"),
        pytest.param("GET", _WS, None, "http", 401, id="ws-get-anonymous"),
        pytest.param("POST", _WS, "carl", "https", 200, id="ws-post-contractor-https"),
        pytest.param("POST", _WS, "carl", "http", 403, id="ws-post-contractor-http"),
        pytest.param("POST", _WS, "sally", "https", 403, id="ws-post-clerk"),
        pytest.param("POST", _WS, None, "https", 401, id="ws-post-anonymous"),
        pytest.param("PUT", _WS, "sally", "https", 403, id="ws-put-clerk-precluded"),
        pytest.param("DELETE", _WS, "carl", "https", 403, id="ws-delete-precluded"),
        pytest.param("HEAD", _WS, "sally", "http", 403, id="ws-head-precluded"),
        pytest.param("GET", _RT, "carl", "http", 200, id="rt-get-contractor"),
        pytest.param("GET", _RT, "hank", "http", 200, id="rt-get-homeowner"),
        pytest.param("POST", _RT, "hank", "http", 200, id="rt-post-homeowner"),
        pytest.param("POST", _RT, "sally", "https", 403, id="rt-post-clerk"),
        pytest.param("GET", _RT, "gus", "https", 403, id="rt-get-guest"),
        pytest.param("PUT", _RT, "carl", "https", 403, id="rt-put-precluded"),
        pytest.param("DELETE", "/other", "carl", "https", 403, id="other-delete"),
        pytest.param("GET", "/other", None, "http", 403, id="other-get-uncovered"),
    ],
)
@pytest.mark.parametrize(
    "secure_port", [pytest.param(0, id="no-port"), pytest.param(8443, id="port")]
)
def test_servlet_example_statuses(
    guard: Callable[..., Client],
    method: str,
    path: str,
    user: str | None,
    scheme: str,
    expected: int,
    secure_port: int,
) -> None:
    client = guard(SERVLET_EXAMPLE, secure_port=secure_port)
    response = client.open(
        path, method=method, auth=_auth(user), base_url=f"{scheme}://shop.test/"
    )
    assert response.status_code == expected


@pytest.mark.parametrize(
    ("deny", "expected"),
    [pytest.param(True, 403, id="deny"), pytest.param(False, 200, id="allow")],
)
def test_servlet_example_uncovered_get(
    guard: Callable[..., Client], deny: bool, expected: int
) -> None:
    client = guard(SERVLET_EXAMPLE, deny_uncovered_methods=deny)
    assert client.get("/other").status_code == expected
    assert client.delete("/other").status_code == 403


# Known roles: servlet "*".

_KNOWN = [
    _mapping("/k", Constraint.known_role(name="known")),
    _mapping("/admin/*", Constraint.with_roles("admin")),
    _mapping("/ops", Constraint.with_roles("ops"), ["POST"]),
]


def test_known_roles_default_union(
    recording_app: Any,
) -> None:
    handler = ConstraintSecurityHandler(recording_app, _KNOWN)
    assert handler.known_roles == {"admin", "ops"}


@pytest.mark.parametrize(
    ("known", "user", "expected"),
    [
        pytest.param(None, "ann", 200, id="default-first-role"),
        pytest.param(None, "oscar", 200, id="default-second-role"),
        pytest.param(None, "gus", 403, id="default-unknown-role"),
        pytest.param(None, None, 401, id="default-anonymous"),
        pytest.param(["GUEST"], "gus", 200, id="explicit-listed"),
        pytest.param(["GUEST"], "ann", 403, id="explicit-not-listed"),
    ],
)
def test_known_role_constraint(
    guard: Callable[..., Client],
    known: list[str] | None,
    user: str | None,
    expected: int,
) -> None:
    client = guard(_KNOWN, known_roles=known)
    assert client.get("/k", auth=_auth(user)).status_code == expected
