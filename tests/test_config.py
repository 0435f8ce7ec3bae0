"""Tests for securityhandler.config: the YAML schema, its errors and secure()."""

from __future__ import annotations

import base64
import textwrap
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pytest
import yaml
from werkzeug.test import Client

from securityhandler import (
    BasicAuthenticator,
    ConfigError,
    Constraint,
    ConstraintMapping,
    HashLoginService,
    ProxyConfig,
    SecurityConfig,
    Transport,
    load_config,
    secure,
)

DATA = Path(__file__).parent / "data" / "config"
SECURITY_YAML = DATA / "security.yaml"
REALM_FILE = DATA / "realm.properties"
CAROL_HASH = (
    "pbkdf2:sha256:1000$rRAKuOZhUXwgyylE$"
    "e37d0173e8d2a3fd63d17645ff523cb7d70c81cabda125ad03d7667a33954fb4"
)
PASSWORDS = {
    "alice": "alice-pw",
    "bob": "bob-pw",
    "carol": "carol-pw",
    "dave": "dave-pw",
}


def app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [environ.get("REMOTE_USER", "-").encode()]


def python_config() -> SecurityConfig:
    """Build in Python what tests/data/config/security.yaml says."""
    staff = HashLoginService(
        "staff",
        REALM_FILE,
        users={"carol": {"password": CAROL_HASH, "roles": ["writer"]}},
        reload_interval=5,
    )
    return SecurityConfig(
        mappings=[
            ConstraintMapping(("/healthz",), Constraint.allowed(name="health")),
            ConstraintMapping(
                ("/admin/*",),
                Constraint.with_roles(
                    "admin", transport=Transport.SECURE, name="admin"
                ),
            ),
            ConstraintMapping(
                ("/api/*",),
                Constraint.any_user(name="api-read"),
                methods=frozenset({"GET", "HEAD"}),
            ),
            ConstraintMapping(
                ("/api/*",),
                Constraint.with_roles("writer", name="api-write"),
                omit_methods=frozenset({"GET", "HEAD"}),
            ),
            ConstraintMapping(("*.csv",), Constraint.known_role(name="reports")),
            ConstraintMapping(
                ("/",), Constraint.forbidden(name="no-trace"), frozenset({"TRACE"})
            ),
        ],
        authenticators=[BasicAuthenticator(staff, realm="orders")],
        realm="orders",
        known_roles=frozenset({"admin", "writer", "reader"}),
        secure_port=8443,
        proxy=ProxyConfig(x_for=1, x_proto=1),
        login_services={"staff": staff},
    )


def mapping_source() -> dict[str, Any]:
    """Return security.yaml as a mapping; its realm file path made absolute."""
    source: dict[str, Any] = yaml.safe_load(SECURITY_YAML.read_text())
    source["login_services"]["staff"]["file"] = str(REALM_FILE)
    return source


@pytest.fixture(params=["yaml", "mapping", "python"])
def client(request: pytest.FixtureRequest) -> Client:
    sources: dict[str, Callable[[], Path | dict[str, Any] | SecurityConfig]] = {
        "yaml": lambda: SECURITY_YAML,
        "mapping": mapping_source,
        "python": python_config,
    }
    return Client(secure(app, sources[request.param]()))


def basic(user: str, password: str | None = None) -> dict[str, str]:
    secret = password if password is not None else PASSWORDS[user]
    token = base64.b64encode(f"{user}:{secret}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def write(tmp_path: Path, text: str, name: str = "security.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def load_error(source: Any) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load_config(source)
    return info.value


# -- A valid configuration answers as configured -----------------------------


@pytest.mark.parametrize(
    ("method", "path", "headers", "status"),
    [
        pytest.param("GET", "/healthz", {}, 200, id="allowed-anonymous"),
        pytest.param("DELETE", "/healthz", {}, 200, id="allowed-every-method"),
        pytest.param("GET", "/api/orders", {}, 401, id="any-user-anonymous"),
        pytest.param("GET", "/api/orders", basic("alice"), 200, id="any-user-file"),
        pytest.param(
            "GET", "/api/orders", basic("alice", "wrong"), 401, id="wrong-password"
        ),
        pytest.param("POST", "/api/orders", basic("alice"), 403, id="role-missing"),
        pytest.param("POST", "/api/orders", basic("carol"), 200, id="inline-user"),
        pytest.param(
            "GET",
            "/admin/panel",
            {**basic("bob"), "X-Forwarded-Proto": "https"},
            200,
            id="secure-via-trusted-proxy",
        ),
        pytest.param(
            "GET",
            "/admin/panel",
            {**basic("alice"), "X-Forwarded-Proto": "https"},
            403,
            id="admin-role-missing",
        ),
        pytest.param("GET", "/r/q1.csv", basic("alice"), 200, id="known-role"),
        pytest.param("GET", "/r/q1.csv", basic("dave"), 403, id="no-known-role"),
        pytest.param("TRACE", "/", {}, 403, id="forbidden"),
        pytest.param("GET", "/other", {}, 403, id="uncovered-method-denied"),
    ],
)
def test_config_guards_app(
    client: Client, method: str, path: str, headers: dict[str, str], status: int
) -> None:
    response = client.open(path, method=method, headers=headers)
    assert response.status_code == status


def test_config_challenges_with_realm(client: Client) -> None:
    response = client.get("/api/orders")
    assert response.status_code == 401
    assert (
        response.headers["WWW-Authenticate"] == 'Basic realm="orders", charset="UTF-8"'
    )


def test_config_redirects_to_secure_port(client: Client) -> None:
    response = client.get("/admin/panel?x=1", headers=basic("bob"))
    assert response.status_code == 302
    assert response.headers["Location"] == "https://localhost:8443/admin/panel?x=1"


def test_yaml_config_matches_python_config() -> None:
    loaded = load_config(SECURITY_YAML)
    built = python_config()
    assert loaded.mappings == built.mappings
    assert (loaded.realm, loaded.known_roles, loaded.secure_port, loaded.proxy) == (
        built.realm,
        built.known_roles,
        built.secure_port,
        built.proxy,
    )
    assert (loaded.deny_uncovered_methods, loaded.enforce) == (True, True)


def test_yaml_config_keeps_source_and_lines() -> None:
    config = load_config(SECURITY_YAML)
    assert config.source == str(SECURITY_YAML)
    assert config.lines["constraints[1].roles"] == 29
    assert config.constraint_line(config.mappings[3]) == 35


def test_mapping_config_has_no_lines() -> None:
    config = load_config(mapping_source())
    assert config.source is None
    assert config.constraint_line(config.mappings[0]) is None


def test_empty_mapping_gives_defaults() -> None:
    assert load_config({}) == SecurityConfig()


def test_str_path_accepted() -> None:
    config = load_config(str(SECURITY_YAML))
    assert config.source == str(SECURITY_YAML)
    assert config.login_services["staff"].login("bob", "bob-pw") is not None


def test_realm_file_relative_to_yaml_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    staff = load_config(SECURITY_YAML).login_services["staff"]
    identity = staff.login("alice", "alice-pw")
    assert identity is not None
    assert identity.roles == frozenset({"reader"})


def test_yaml_anchor_reused(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        constraints:
          - {paths: &api ["/api/*", "/v2/*"], methods: [GET], authorization: allowed}
          - {paths: *api, omit_methods: [GET], authorization: forbidden}
        """,
    )
    config = load_config(path)
    assert config.mappings[0].paths == config.mappings[1].paths == ("/api/*", "/v2/*")


def test_alias_expansion_bounded(tmp_path: Path) -> None:
    # Each level repeats the one before ten times: a million values at l5.
    levels = ["l0: &l0 [" + ", ".join(["x"] * 10) + "]"]
    for level in range(1, 6):
        levels.append(
            f"l{level}: &l{level} [" + ", ".join([f"*l{level - 1}"] * 10) + "]"
        )
    path = write(tmp_path, "\n".join(levels) + "\n")
    error = load_error(path)
    assert (error.file, (error.key or "")[:2]) == (str(path), "l4")
    assert "too many values once YAML aliases are expanded" in error.description


# -- Invalid configurations name file, line and key --------------------------

USERS = f"""
login_services:
  staff:
    type: hash
    users: {{carol: {{password: "{CAROL_HASH}", roles: [writer]}}}}
"""


@pytest.mark.parametrize(
    ("text", "line", "key", "fragment"),
    [
        pytest.param(
            "realms: orders\n",
            1,
            "realms",
            "Unknown key 'realms': expected one of realm, known_roles,",
            id="unknown-top-key",
        ),
        pytest.param(
            "realm: a\nenforce: true\nrealm: b\n",
            3,
            "realm",
            "Duplicate key 'realm': first given on line 1",
            id="duplicate-key",
        ),
        pytest.param(
            "realm: orders\nconstraints: [\n  {paths: [/a]\n",
            4,
            None,
            "Invalid YAML",
            id="yaml-syntax",
        ),
        pytest.param(
            "- realm\n",
            1,
            None,
            "expected a mapping of settings, got a list",
            id="top-level-list",
        ),
        pytest.param(
            "realm: [orders]\n",
            1,
            "realm",
            "expected a realm name, got a list",
            id="realm-list",
        ),
        pytest.param(
            'realm: "a\\nb"\n',
            1,
            "realm",
            "without control characters",
            id="realm-control-character",
        ),
        pytest.param(
            "known_roles: admin\n",
            1,
            "known_roles",
            "expected a list of role names, got a string",
            id="known-roles-string",
        ),
        pytest.param(
            'enforce: "false"\n',
            1,
            "enforce",
            "expected true or false, got a string",
            id="bool-string",
        ),
        pytest.param(
            "deny_uncovered_methods: 0\n",
            1,
            "deny_uncovered_methods",
            "expected true or false, got an integer",
            id="bool-integer",
        ),
        pytest.param(
            "secure_port: 70000\n",
            1,
            "secure_port",
            "expected a port number from 0 to 65535, got 70000",
            id="port-range",
        ),
        pytest.param(
            "secure_port: true\n",
            1,
            "secure_port",
            "got a boolean",
            id="port-boolean",
        ),
        pytest.param(
            "proxy:\n  x_for: 1\n  x_proto: -1\n",
            3,
            "proxy.x_proto",
            "expected a number of proxy hops (an integer >= 0), got -1",
            id="proxy-negative-hops",
        ),
        pytest.param(
            "proxy: {x_real_ip: 1}\n",
            1,
            "proxy.x_real_ip",
            "expected one of x_for, x_proto, x_host, x_port, x_prefix",
            id="proxy-unknown-key",
        ),
        pytest.param(
            "session:\n  keys: [abc]\n",
            1,
            "session",
            "Section 'session' is recognised but not available",
            id="session-later",
        ),
        pytest.param(
            USERS + "authenticators:\n  - {type: basic, login_service: staff}\n"
            "  - {type: form, login_service: staff}\n",
            7,
            "authenticators[1].type",
            "Authenticator type 'form' is recognised but not available",
            id="form-later",
        ),
        pytest.param(
            "authenticators:\n  - type: digest\n",
            2,
            "authenticators[0].type",
            "Invalid type: expected one of basic, bearer, iap, got 'digest'",
            id="authenticator-unknown-type",
        ),
        pytest.param(
            "authenticators:\n  - type: [basic]\n",
            2,
            "authenticators[0].type",
            "Invalid type: expected one of basic, bearer, iap, got a list",
            id="authenticator-type-list",
        ),
        pytest.param(
            "authenticators:\n  - type: basic\n",
            2,
            "authenticators[0].login_service",
            "Missing key 'login_service'",
            id="basic-without-service",
        ),
        pytest.param(
            USERS + "authenticators:\n  - {type: basic, login_service: stuff}\n",
            6,
            "authenticators[0].login_service",
            "Unknown login service 'stuff': expected one of staff",
            id="basic-unknown-service",
        ),
        pytest.param(
            "authenticators:\n  - {type: basic, login_service: staff}\n",
            2,
            "authenticators[0].login_service",
            "Unknown login service 'staff': no login service is defined",
            id="basic-no-services",
        ),
        pytest.param(
            "authenticators:\n  - {type: basic, login_service: s, realm: x}\n",
            2,
            "authenticators[0].realm",
            "Unknown key 'realm': expected one of type, login_service",
            id="basic-unknown-key",
        ),
        pytest.param(
            "login_services:\n  staff: {type: ldap}\n",
            2,
            "login_services.staff.type",
            "expected one of hash, got 'ldap'",
            id="service-unknown-type",
        ),
        pytest.param(
            "login_services:\n  staff:\n    file: realm.properties\n",
            2,
            "login_services.staff.type",
            "Missing key 'type'",
            id="service-without-type",
        ),
        pytest.param(
            "login_services:\n  staff:\n    type: hash\n",
            2,
            "login_services.staff.users",
            "needs a file or users",
            id="service-without-users",
        ),
        pytest.param(
            "login_services:\n  staff:\n    type: hash\n    file: missing.properties\n",
            4,
            "login_services.staff.file",
            "realm file 'missing.properties' does not exist",
            id="service-missing-file",
        ),
        pytest.param(
            USERS + "    reload_interval: soon\n",
            5,
            "login_services.staff.reload_interval",
            "expected a number of seconds >= 0, got a string",
            id="service-reload-string",
        ),
        pytest.param(
            "login_services:\n  staff:\n    type: hash\n    users:\n"
            "      carol:\n        password: 'nope$x$y'\n",
            6,
            "login_services.staff.users.carol.password",
            "unknown scheme",
            id="inline-password-relocated",
        ),
        pytest.param(
            "constraints:\n  - paths: [/a]\n    roles: admin\n",
            3,
            "constraints[0].roles",
            "Invalid roles: expected a list of role names, got a string",
            id="roles-string",
        ),
        pytest.param(
            "constraints:\n  - paths: [/a]\n    authorization: allowed\n"
            "  - paths: [/b]\n    roles: []\n",
            5,
            "constraints[1].roles",
            "'authorization: forbidden'",
            id="roles-empty",
        ),
        pytest.param(
            "constraints:\n  - paths: [/a]\n    roles: ['**']\n",
            3,
            "constraints[0].roles[0]",
            "write 'authorization: any-user' instead",
            id="roles-servlet-star",
        ),
        pytest.param(
            "constraints:\n  - paths: [/a]\n    authorization: allowed\n"
            "    roles: [admin]\n",
            4,
            "constraints[0].roles",
            "Give either roles or authorization, not both",
            id="roles-and-authorization",
        ),
        pytest.param(
            "constraints:\n  - paths: [/a]\n",
            2,
            "constraints[0].authorization",
            "Missing key 'authorization'",
            id="no-authorization",
        ),
        pytest.param(
            "constraints:\n  - paths: [/a]\n    authorization: everyone\n",
            3,
            "constraints[0].authorization",
            "expected one of forbidden, allowed, any-user, known-role, got 'everyone'",
            id="authorization-unknown",
        ),
        pytest.param(
            "constraints:\n  - {paths: [/a], authorization: allowed, transport: tls}\n",
            2,
            "constraints[0].transport",
            "expected one of any, secure, got 'tls'",
            id="transport-unknown",
        ),
        pytest.param(
            "constraints:\n  - paths: [/a]\n    methods: [GET]\n"
            "    omit_methods: [POST]\n    authorization: allowed\n",
            4,
            "constraints[0].omit_methods",
            "Give either methods or omit_methods, not both",
            id="methods-and-omit-methods",
        ),
        pytest.param(
            "constraints:\n  - paths: [/a]\n    methods:\n      - GET\n"
            "      - GE T\n    authorization: allowed\n",
            5,
            "constraints[0].methods[1]",
            "expected an HTTP method token, got 'GE T'",
            id="method-not-token",
        ),
        pytest.param(
            "constraints:\n  - {paths: [/a], methods: [], authorization: allowed}\n",
            2,
            "constraints[0].methods",
            "expected at least one method",
            id="methods-empty",
        ),
        pytest.param(
            "constraints:\n  - {name: a, paths: [/a], authorization: allowed}\n"
            "  - {name: a, paths: [/b], authorization: allowed}\n",
            3,
            "constraints[1].name",
            "Invalid name: 'a' is already used by constraints[0] on line 2",
            id="name-duplicate",
        ),
        pytest.param(
            "constraints:\n  - authorization: allowed\n",
            2,
            "constraints[0].paths",
            "Missing key 'paths': expected a list of path specs",
            id="paths-missing",
        ),
        pytest.param(
            "constraints:\n  - paths:\n      - /a\n      - /a/*/b\n"
            "    authorization: allowed\n",
            4,
            "constraints[0].paths[1]",
            "'*' is allowed only as '/a/*' or '*.ext'",
            id="path-spec-invalid",
        ),
        pytest.param(
            "constraints:\n  - {paths: [/a, /a], authorization: allowed}\n",
            2,
            "constraints[0].paths[1]",
            "'/a' is listed twice",
            id="path-spec-twice",
        ),
        pytest.param(
            "constraints:\n  - {paths: [1], authorization: allowed}\n",
            2,
            "constraints[0].paths[0]",
            "expected a path spec, got an integer",
            id="path-spec-integer",
        ),
        pytest.param(
            "constraints:\n  - {paths: [/a], role: admin}\n",
            2,
            "constraints[0].role",
            "Unknown key 'role': expected one of name, paths, methods, omit_methods,",
            id="constraint-unknown-key",
        ),
        pytest.param(
            "constraints:\n  - /a\n",
            2,
            "constraints[0]",
            "expected a mapping of constraint settings, got a string",
            id="constraint-not-mapping",
        ),
        pytest.param(
            "realm: !!python/name:os.system\n",
            1,
            "realm",
            "Invalid YAML",
            id="python-tag",
        ),
        pytest.param(
            "base: &b {realm: x}\n<<: *b\n",
            2,
            None,
            "merge keys ('<<') are not supported",
            id="merge-key",
        ),
        pytest.param(
            # An alias in a list reports the line of its anchor.
            "constraints: &c\n  - *c\n",
            1,
            "constraints[0]",
            "an alias refers to a value that holds it",
            id="recursive-alias",
        ),
        pytest.param(
            "enforce: true\nrealm: \x01\n",
            2,
            None,
            "Invalid YAML: special characters are not allowed (#x0001)",
            id="control-character",
        ),
        pytest.param(
            "realm: !!binary aGVsbG8=\n",
            1,
            "realm",
            "expected a realm name, got binary data",
            id="binary-value",
        ),
        pytest.param(
            "1: x\n",
            1,
            None,
            "Invalid key: expected a string, got an integer",
            id="integer-key",
        ),
    ],
)
def test_invalid_yaml_located(
    tmp_path: Path, text: str, line: int, key: str | None, fragment: str
) -> None:
    path = write(tmp_path, text)
    error = load_error(path)
    assert (error.file, error.line, error.key) == (str(path), line, key)
    assert fragment in error.description


@pytest.mark.parametrize(
    ("source", "key", "fragment"),
    [
        pytest.param(
            {"constraints": [{"paths": ["/a"], "roles": "admin"}]},
            "constraints[0].roles",
            "expected a list of role names, got a string",
            id="roles-string",
        ),
        pytest.param(
            {"secure_port": "443"},
            "secure_port",
            "got a string",
            id="port-string",
        ),
        pytest.param(
            {"realm": "x", "session": {}},
            "session",
            "recognised but not available",
            id="session-later",
        ),
        pytest.param(
            {"login_services": {"staff": {"type": "hash", "users": {"a b": {}}}}},
            "login_services.staff.users.a b",
            "A user name must be non-empty",
            id="inline-user-relocated",
        ),
        pytest.param(
            {"constraints": [{"paths": {"/a"}, "authorization": "allowed"}]},
            "constraints[0].paths",
            "expected a list of path specs, got a set",
            id="paths-set",
        ),
    ],
)
def test_invalid_mapping_located(
    source: dict[str, Any], key: str, fragment: str
) -> None:
    error = load_error(source)
    assert (error.file, error.line, error.key) == (None, None, key)
    assert fragment in error.description


def test_empty_yaml_rejected(tmp_path: Path) -> None:
    path = write(tmp_path, "# nothing yet\n")
    error = load_error(path)
    assert (error.file, error.key) == (str(path), None)
    assert "got an empty document" in error.description


def test_missing_config_file_named(tmp_path: Path) -> None:
    path = tmp_path / "absent.yaml"
    error = load_error(path)
    assert (error.file, error.line) == (str(path), None)
    assert str(error) == f"{path}: Configuration file not found"


def test_str_shows_file_line_key(tmp_path: Path) -> None:
    path = write(tmp_path, "realm: orders\nenforce: 1\n")
    assert str(load_error(str(path))) == (
        f"{path}:2: enforce: Invalid enforce: expected true or false, got an integer"
    )


def test_realm_file_error_keeps_its_place(tmp_path: Path) -> None:
    write(tmp_path, "# users\nalice: MD5:abc, admin\n", name="realm.properties")
    path = write(
        tmp_path,
        "login_services:\n  staff: {type: hash, file: realm.properties}\n",
    )
    error = load_error(path)
    assert (error.file, error.line, error.key) == (
        str(tmp_path / "realm.properties"),
        2,
        "alice",
    )
    assert "32 hex digits" in error.description


# -- Environment variables ----------------------------------------------------


def test_env_variable_fills_value(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ORDERS_ENV", "prod")
    path = write(tmp_path, "realm: orders-${ORDERS_ENV}-${ORDERS_ENV}\n")
    assert load_config(path).realm == "orders-prod-prod"


def test_env_password_logs_in(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CAROL_HASH", CAROL_HASH)
    path = write(
        tmp_path,
        """
        login_services:
          staff:
            type: hash
            users: {carol: {password: "${CAROL_HASH}", roles: [writer]}}
        """,
    )
    staff = load_config(path).login_services["staff"]
    assert staff.login("carol", "carol-pw") is not None
    assert staff.login("carol", "wrong") is None


def test_env_variable_in_mapping(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORDERS_REALM", "orders")
    assert load_config({"realm": "${ORDERS_REALM}"}).realm == "orders"


def test_env_variable_missing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ORDERS_UNSET", raising=False)
    path = write(tmp_path, "enforce: true\nrealm: ${ORDERS_UNSET}\n")
    error = load_error(path)
    assert (error.file, error.line, error.key) == (str(path), 2, "realm")
    assert error.description == "Environment variable 'ORDERS_UNSET' is not set"


@pytest.mark.parametrize(
    ("text", "realm"),
    [
        pytest.param('realm: "a$${ORDERS_UNSET}"\n', "a${ORDERS_UNSET}", id="escaped"),
        pytest.param("realm: a$b$$c\n", "a$b$$c", id="lone-dollars-kept"),
        pytest.param("realm: $${${ORDERS_ENV}}\n", "${prod}", id="escape-then-value"),
    ],
)
def test_env_escape_literal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str, realm: str
) -> None:
    monkeypatch.delenv("ORDERS_UNSET", raising=False)
    monkeypatch.setenv("ORDERS_ENV", "prod")
    assert load_config(write(tmp_path, text)).realm == realm


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("${1ABC}", id="bad-name"),
        pytest.param("${ORDERS_ENV", id="unterminated"),
        pytest.param("${}", id="empty"),
    ],
)
def test_env_reference_malformed(tmp_path: Path, value: str) -> None:
    error = load_error(write(tmp_path, f'realm: "{value}"\n'))
    assert (error.line, error.key) == (1, "realm")
    assert "$${ for a literal" in error.description


SECRET = "hunter2 s3cret"


@pytest.mark.parametrize(
    ("line", "key"),
    [
        pytest.param(
            "  - {paths: [/a], authorization: '${SECRET_VALUE}'}",
            "constraints[0].authorization",
            id="authorization",
        ),
        pytest.param(
            "  - {paths: [/a], transport: '${SECRET_VALUE}', authorization: allowed}",
            "constraints[0].transport",
            id="transport",
        ),
        pytest.param(
            "  - {paths: ['/${SECRET_VALUE}/*/x'], authorization: allowed}",
            "constraints[0].paths[0]",
            id="path-spec",
        ),
        pytest.param(
            "  - {paths: [/a], methods: ['${SECRET_VALUE}'], authorization: allowed}",
            "constraints[0].methods[0]",
            id="method",
        ),
        pytest.param(
            "  - {name: '${SECRET_VALUE}', paths: [/a], authorization: allowed}\n"
            "  - {name: '${SECRET_VALUE}', paths: [/b], authorization: allowed}",
            "constraints[1].name",
            id="duplicate-name",
        ),
    ],
)
def test_env_secret_not_echoed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, line: str, key: str
) -> None:
    monkeypatch.setenv("SECRET_VALUE", SECRET)
    error = load_error(write(tmp_path, f"constraints:\n{line}\n"))
    assert error.key == key
    assert SECRET not in str(error)
    assert error.__cause__ is None or SECRET not in str(error.__cause__)


def test_env_secret_reference_not_echoed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SECRET_VALUE", SECRET)
    path = write(
        tmp_path,
        USERS
        + "authenticators:\n  - {type: basic, login_service: '${SECRET_VALUE}'}\n",
    )
    error = load_error(path)
    assert error.key == "authenticators[0].login_service"
    assert SECRET not in str(error)
