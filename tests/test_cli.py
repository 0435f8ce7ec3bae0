"""The ``securityhandler`` command, run as a user runs it: in a subprocess.

``check`` finds each lint on a config built to have it; ``explain`` names the
constraint and the reason of each denial cause, and its verdict is the
status the real handler answers; ``table``, ``token`` and ``hash-password``
print what they promise. Exit codes: 0 ok, 1 denied or findings, 2 usage or
configuration error.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from joserfc import jwt
from joserfc.jwk import ECKey, KeySet
from werkzeug.security import check_password_hash
from werkzeug.test import Client

from securityhandler import secure
from securityhandler.testing import LocalIssuer

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "data" / "cli"
EXPLAIN = DATA / "explain.yaml"
TOKENS = DATA / "tokens.yaml"
AUDIENCE = "https://orders.example.test"
EXAMPLES = [
    ROOT / "examples" / "flask_app" / "security.yaml",
    ROOT / "examples" / "django_project" / "security.yaml",
    ROOT / "securityhandler" / "_demo" / "security.yaml",
]
PASSWORDS = {"alice": "alice-pw", "bob": "bob-pw"}


def run(
    *args: str | os.PathLike[str],
    stdin: str | None = None,
    env: Mapping[str, str] | None = None,
    new_session: bool = False,
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m securityhandler.cli ARGS`` against this checkout."""
    return subprocess.run(
        [sys.executable, "-m", "securityhandler.cli", *map(str, args)],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
        start_new_session=new_session,
        timeout=120,
        check=False,
    )


def run_json(
    *args: str | os.PathLike[str],
    stdin: str | None = None,
    env: Mapping[str, str] | None = None,
) -> Any:
    """Run a subcommand with ``--format json``; return the parsed stdout."""
    result = run(*args, "--format", "json", stdin=stdin, env=env)
    assert result.returncode in (0, 1), result.stderr
    return json.loads(result.stdout)


def explain_json(
    method: str, path: str, *options: str, stdin: str | None = None
) -> Any:
    """Explain a request against ``explain.yaml``; return the JSON document."""
    return run_json("explain", EXPLAIN, method, path, *options, stdin=stdin)


def verdict(document: Mapping[str, Any]) -> tuple[int, str, list[str]]:
    """Return the status, the reason and the constraints the method step applied."""
    method = next(s for s in document["steps"] if s["step"] == "method")
    names = [c["name"] for c in method["constraints"]]
    return document["status"], document["reason"], names


def codes(findings: Iterable[Mapping[str, Any]]) -> list[tuple[str, str]]:
    """Return ``(code, severity)`` of each finding."""
    return [(f["code"], f["severity"]) for f in findings]


# -- Every subcommand ----------------------------------------------------------


@pytest.mark.parametrize(
    "command", ["check", "explain", "table", "token", "hash-password", "demo"]
)
def test_every_subcommand_has_help(command: str) -> None:
    result = run(command, "--help")
    assert result.returncode == 0
    assert result.stdout.startswith(f"usage: securityhandler {command}")


def test_unknown_option_is_usage_error() -> None:
    result = run("check", EXPLAIN, "--strict")
    assert result.returncode == 2
    assert "unrecognized arguments: --strict" in result.stderr


# -- check ---------------------------------------------------------------------


def test_check_clean_config_exits_0() -> None:
    result = run("check", DATA / "clean.yaml")
    assert result.returncode == 0
    assert result.stdout.strip().endswith("0 warnings, 0 notes")


@pytest.mark.parametrize(
    ("config", "expected", "line"),
    [
        pytest.param(
            "uncovered-open.yaml", [("SH001", "warning")], 8, id="uncovered-open"
        ),
        pytest.param("shadowed.yaml", [("SH002", "warning")], 9, id="shadowed-rule"),
        pytest.param(
            "unholdable-role.yaml", [("SH003", "warning")], 7, id="role-nobody-holds"
        ),
        pytest.param("plain-http.yaml", [("SH005", "warning")], 5, id="plain-http"),
        pytest.param("report-only.yaml", [("SH007", "warning")], 2, id="report-only"),
    ],
)
def test_check_finds_warning(
    config: str, expected: list[tuple[str, str]], line: int
) -> None:
    result = run("check", DATA / config, "--format", "json")
    document = json.loads(result.stdout)
    assert result.returncode == 1
    assert codes(document["findings"]) == expected
    assert document["findings"][0]["line"] == line


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        pytest.param("uncovered-denied.yaml", "SH001", id="uncovered-denied"),
        pytest.param("proxy.yaml", "SH006", id="trusted-proxy"),
    ],
)
def test_check_note_does_not_fail(config: str, expected: str) -> None:
    result = run("check", DATA / config, "--format", "json")
    document = json.loads(result.stdout)
    assert result.returncode == 0
    assert codes(document["findings"]) == [(expected, "note")]


def test_check_uncovered_names_methods_and_effect() -> None:
    document = run_json("check", DATA / "uncovered-open.yaml")
    message = document["findings"][0]["message"]
    assert "'/api/*' leaves PUT uncovered" in message
    assert "allowed without any check" in message


def test_check_uncovered_denied_says_403() -> None:
    document = run_json("check", DATA / "uncovered-denied.yaml")
    message = document["findings"][0]["message"]
    assert "every method but GET, HEAD uncovered: answered 403" in message


def test_check_shadowed_rule_names_both_specs_and_fix() -> None:
    finding = run_json("check", DATA / "shadowed.yaml")["findings"][0]
    assert (
        "'no-trace' (forbidden for TRACE on '/') does not reach '/api/*'"
        in (finding["message"])
    )
    assert finding["fix"] == "Add '/api/*' to the paths of 'no-trace'"


def test_check_plain_passwords_point_at_each_user() -> None:
    document = run_json("check", DATA / "plain-password.yaml")
    places = {(Path(f["file"]).name, f["line"]) for f in document["findings"]}
    assert codes(document["findings"]) == [("SH004", "warning")] * 2
    assert places == {("plain-realm.properties", 3), ("plain-password.yaml", 7)}


def test_check_text_has_location_code_and_fix() -> None:
    result = run("check", DATA / "shadowed.yaml")
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"{DATA / 'shadowed.yaml'}:9: warning SH002: ")
    assert lines[1] == "    fix: Add '/api/*' to the paths of 'no-trace'"


def test_check_unknown_login_service_is_config_error() -> None:
    result = run("check", DATA / "unknown-service.yaml")
    assert result.returncode == 2
    assert "unknown-service.yaml:5: authenticators[0].login_service" in result.stderr
    assert "Unknown login service 'staf'" in result.stderr


def test_check_config_error_as_json() -> None:
    result = run("check", DATA / "unknown-service.yaml", "--format", "json")
    error = json.loads(result.stdout)["error"]
    assert result.returncode == 2
    assert (error["line"], error["key"]) == (5, "authenticators[0].login_service")


def test_check_missing_file_is_config_error() -> None:
    result = run("check", DATA / "no-such.yaml")
    assert result.returncode == 2
    assert "Configuration file not found" in result.stderr


@pytest.mark.parametrize("config", EXAMPLES, ids=lambda p: p.parent.name)
def test_check_examples_have_no_findings(config: Path) -> None:
    result = run("check", config, "--format", "json")
    assert json.loads(result.stdout)["findings"] == []
    assert result.returncode == 0


# -- explain: one test per denial cause ----------------------------------------


def test_explain_forbidden_names_constraint() -> None:
    document = explain_json("TRACE", "/orders")
    assert verdict(document) == (403, "forbidden", ["no-trace"])
    assert document["message"] == "Constraint 'no-trace' forbids TRACE on '/'"


def test_explain_uncovered_method_names_spec() -> None:
    document = explain_json("POST", "/healthz")
    assert verdict(document) == (403, "uncovered_method", [])
    assert document["message"] == (
        "No constraint of '/healthz' covers POST, and deny_uncovered_methods is true"
    )


def test_explain_insecure_transport_names_constraint() -> None:
    document = explain_json(
        "GET", "/admin/users", "--user", "alice", "--roles", "admin"
    )
    assert verdict(document) == (403, "insecure_transport", ["admin"])
    assert document["message"].startswith("Constraint 'admin' demands HTTPS")


def test_explain_https_passes_transport() -> None:
    document = explain_json(
        "GET", "/admin/users", "--user", "alice", "--roles", "admin", "--https"
    )
    transport = next(s for s in document["steps"] if s["step"] == "transport")
    assert (document["status"], document["reason"]) == (200, "authorized")
    assert transport["ok"] is True


def test_explain_no_credential_names_authenticators() -> None:
    document = explain_json("GET", "/api/orders")
    assert verdict(document) == (401, "no_credential", ["api-read"])
    assert "basic (staff)" in document["message"]


def test_explain_bad_password_names_user() -> None:
    document = explain_json(
        "GET", "/api/orders", "--user", "alice", "--password-stdin", stdin="nope\n"
    )
    assert verdict(document) == (401, "bad_credentials", ["api-read"])
    assert document["message"] == "Wrong password for user 'alice'"


def test_explain_unknown_user_names_login_service() -> None:
    document = explain_json(
        "GET", "/api/orders", "--user", "carol", "--password-stdin", stdin="pw\n"
    )
    assert verdict(document) == (401, "bad_credentials", ["api-read"])
    assert document["message"] == "Unknown user 'carol': not in login service 'staff'"


def test_explain_malformed_basic_header() -> None:
    document = explain_json(
        "GET", "/api/orders", "--header", "Authorization: Basic !!!"
    )
    assert verdict(document) == (401, "malformed_credentials", ["api-read"])
    assert document["message"].startswith("Malformed Basic credentials")


def test_explain_missing_role_says_needed_and_held() -> None:
    document = explain_json(
        "DELETE", "/api/orders/7", "--user", "bob", "--password-stdin", stdin="bob-pw\n"
    )
    assert verdict(document) == (403, "missing_role", ["api-write"])
    assert document["message"] == "Role 'writer' needed, identity 'bob' has 'reader'"


def test_explain_known_role_lists_known_roles() -> None:
    document = explain_json("GET", "/r/q1.csv", "--user", "eve", "--roles", "guest")
    assert verdict(document) == (403, "missing_role", ["reports"])
    assert document["message"] == (
        "A known role ('admin', 'writer') needed, identity 'eve' has 'guest'"
    )


def test_explain_ambiguous_target_gives_reason() -> None:
    document = explain_json("GET", "/api/a%2Fb")
    assert (document["status"], document["reason"]) == (400, "ambiguous_target")
    assert document["steps"][0]["target_error"] == "encoded_separator"


def test_explain_dot_segments_resolved_before_matching() -> None:
    document = explain_json("TRACE", "/healthz/../api/x")
    assert document["steps"][0]["path"] == "/api/x"
    assert document["steps"][1]["spec"]["spec"] == "/api/*"


# -- explain: what it shows ----------------------------------------------------


def test_explain_spec_lists_beaten_specs_in_order() -> None:
    document = explain_json("GET", "/api/report.csv", "--user", "a", "--roles", "admin")
    spec = document["steps"][1]
    assert spec["spec"]["spec"] == "/api/*"
    assert [s["spec"] for s in spec["beaten"]] == ["*.csv", "/"]


def test_explain_method_shows_constraints_and_combination() -> None:
    document = explain_json("PUT", "/api/x", "--user", "a", "--roles", "writer")
    method = document["steps"][2]
    assert method["own_entry"] is False
    assert [c["name"] for c in method["constraints"]] == ["api-write"]
    assert method["combined"]["summary"] == "roles writer"


def test_explain_allowed_exits_0_with_identity_roles() -> None:
    result = run(
        "explain",
        EXPLAIN,
        "GET",
        "/api/orders",
        "--user",
        "bob",
        "--password-stdin",
        stdin="bob-pw\n",
    )
    assert result.returncode == 0
    assert result.stdout.startswith("ALLOW 200: ")
    assert "basic (staff): 'bob' with roles reader" in result.stdout


def test_explain_denied_exits_1() -> None:
    result = run("explain", EXPLAIN, "TRACE", "/x")
    assert result.returncode == 1
    assert result.stdout.startswith("DENY 403: Constraint 'no-trace' forbids TRACE")


def test_explain_never_prints_password() -> None:
    result = run(
        "explain",
        EXPLAIN,
        "GET",
        "/api/x",
        "--user",
        "alice",
        "--password-stdin",
        "--format",
        "json",
        stdin="alice-pw\n",
    )
    assert result.returncode == 0
    assert "alice-pw" not in result.stdout + result.stderr
    assert "Authorization" not in result.stdout


def test_explain_url_sets_scheme_and_host() -> None:
    document = explain_json(
        "GET", "https://orders.example/admin/x", "--user", "a", "--roles", "admin"
    )
    assert document["request"]["scheme"] == "https"
    assert document["reason"] == "authorized"


def test_explain_report_only_would_deny(tmp_path: Path) -> None:
    config = tmp_path / "security.yaml"
    config.write_text(
        EXPLAIN.read_text().replace("realm: orders", "realm: orders\nenforce: false")
    )
    (tmp_path / "realm.properties").write_text((DATA / "realm.properties").read_text())
    result = run("explain", config, "TRACE", "/x", "--format", "json")
    document = json.loads(result.stdout)
    assert (document["decision"], document["status"]) == ("would_deny", 200)
    assert result.returncode == 1


@pytest.mark.parametrize(
    "options",
    [
        pytest.param(["--roles", "a"], id="roles-without-user"),
        pytest.param(["--user", "bob"], id="user-without-roles"),
        pytest.param(["--header", "no colon"], id="malformed-header"),
        pytest.param(["--token", "t", "--user", "bob"], id="token-and-user"),
    ],
)
def test_explain_usage_errors_exit_2(options: list[str]) -> None:
    result = run("explain", EXPLAIN, "GET", "/", *options)
    assert result.returncode == 2
    assert "error" in result.stderr


def test_explain_config_error_exits_2() -> None:
    result = run("explain", DATA / "unknown-service.yaml", "GET", "/")
    assert result.returncode == 2
    assert "Unknown login service 'staf'" in result.stderr


# -- explain agrees with the handler -------------------------------------------


def _ok_app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]


@pytest.mark.parametrize(
    ("method", "path", "user", "https"),
    [
        pytest.param("GET", "/healthz", None, False, id="allowed"),
        pytest.param("POST", "/healthz", None, False, id="uncovered"),
        pytest.param("TRACE", "/api/x", "alice", False, id="forbidden"),
        pytest.param("GET", "/api/x", None, False, id="no-credential"),
        pytest.param("GET", "/api/x", "bob", False, id="any-user"),
        pytest.param("PUT", "/api/x", "bob", False, id="missing-role"),
        pytest.param("PUT", "/api/x", "alice", False, id="role-held"),
        pytest.param("GET", "/admin/", "alice", False, id="insecure"),
        pytest.param("GET", "/admin/", "alice", True, id="secure"),
        pytest.param("GET", "/admin/", "bob", True, id="secure-missing-role"),
        pytest.param("GET", "/x.csv", "bob", False, id="known-role-missing"),
        pytest.param("GET", "/x.csv", "alice", False, id="known-role-held"),
        pytest.param("GET", "/a/../../x", None, False, id="above-root"),
        pytest.param("GET", "/a//b", "alice", False, id="empty-segment"),
    ],
)
def test_explain_status_matches_handler(
    method: str, path: str, user: str | None, https: bool
) -> None:
    options = ["--user", user, "--password-stdin"] if user else []
    if https:
        options.append("--https")
    stdin = PASSWORDS[user] + "\n" if user else None
    document = explain_json(method, path, *options, stdin=stdin)

    client = Client(secure(_ok_app, EXPLAIN))
    auth = (user, PASSWORDS[user]) if user else None
    base_url = "https://localhost" if https else "http://localhost"
    response = client.open(path, method=method, auth=auth, base_url=base_url)

    assert document["status"] == response.status_code


# -- table ---------------------------------------------------------------------


def test_table_json_cells_per_spec_and_method() -> None:
    document = run_json("table", EXPLAIN)
    rows = {row["spec"]: row["cells"] for row in document["rows"]}
    assert rows["/api/*"]["GET"] == "any-user"
    assert rows["/api/*"]["DELETE"] == "roles writer"
    assert rows["/admin/*"]["other"] == "roles admin +https"


def test_table_uncovered_and_forbidden_cells() -> None:
    rows = {row["spec"]: row["cells"] for row in run_json("table", EXPLAIN)["rows"]}
    assert rows["/healthz"]["POST"] == "uncovered→403"
    assert rows["/"]["TRACE"] == "forbidden"
    assert rows["*.csv"]["GET"] == "known-role"


def test_table_columns_add_named_methods_and_other() -> None:
    document = run_json("table", DATA / "uncovered-open.yaml")
    assert document["columns"][:8] == [
        "GET",
        "HEAD",
        "POST",
        "PUT",
        "PATCH",
        "DELETE",
        "OPTIONS",
        "TRACE",
    ]
    assert document["columns"][-1] == "other"


def test_table_rows_in_precedence_order() -> None:
    specs = [row["spec"] for row in run_json("table", EXPLAIN)["rows"]]
    assert specs == ["/healthz", "/admin/*", "/api/*", "*.csv", "/"]


def test_table_uncovered_open_cell() -> None:
    document = run_json("table", DATA / "uncovered-open.yaml")
    api = next(row for row in document["rows"] if row["spec"] == "/api/*")
    assert api["cells"]["PUT"] == "uncovered→open"
    assert api["cells"]["POST"] == "roles writer +https"


def test_table_markdown_escapes_role_bars(tmp_path: Path) -> None:
    config = tmp_path / "security.yaml"
    config.write_text("constraints:\n  - {paths: ['/a/*'], roles: [ops, admin]}\n")
    result = run("table", config, "--format", "markdown")
    lines = result.stdout.splitlines()
    assert lines[0].startswith("| path spec | GET | HEAD |")
    assert "| `/a/*` | roles admin\\|ops |" in lines[2]
    assert lines[3].startswith("| `(no spec)` | allowed |")


def test_table_text_aligned_columns() -> None:
    result = run("table", EXPLAIN)
    header, first = result.stdout.splitlines()[:2]
    assert result.returncode == 0
    assert header.index("GET") == first.index("allowed")


# -- hash-password -------------------------------------------------------------


def test_hash_password_stdin_prints_realm_line() -> None:
    result = run(
        "hash-password", "carol", "--roles", "admin,ops", "--stdin", stdin="s3cret pw\n"
    )
    user, _, rest = result.stdout.strip().partition(": ")
    hashed, *roles = rest.split(", ")
    assert (result.returncode, user, roles) == (0, "carol", ["admin", "ops"])
    assert hashed.startswith("scrypt:")
    assert check_password_hash(hashed, "s3cret pw")


def test_hash_password_without_user_prints_hash_only() -> None:
    result = run("hash-password", "--stdin", stdin="pw\n")
    assert result.returncode == 0
    assert check_password_hash(result.stdout.strip(), "pw")


def test_hash_password_prompt_twice_mismatch_exits_2() -> None:
    # A new session has no controlling terminal: getpass reads stdin instead.
    result = run("hash-password", stdin="one\ntwo\n", new_session=True)
    assert result.returncode == 2
    assert "The two passwords do not match" in result.stderr


def test_hash_password_prompt_twice_match() -> None:
    result = run("hash-password", stdin="same-pw\nsame-pw\n", new_session=True)
    assert result.returncode == 0
    assert check_password_hash(result.stdout.strip(), "same-pw")


def test_hash_password_never_from_argv() -> None:
    result = run("hash-password", "carol", "secret")
    assert result.returncode == 2
    assert "secret" not in result.stdout


def test_hash_password_empty_refused() -> None:
    result = run("hash-password", "--stdin", stdin="\n")
    assert result.returncode == 2
    assert "The password is empty" in result.stderr


def test_hash_password_bad_user_name_refused() -> None:
    result = run("hash-password", "a:b", "--stdin", stdin="pw\n")
    assert result.returncode == 2
    assert "may not be empty or hold spaces, colons" in result.stderr


# -- explain: bearer tokens ----------------------------------------------------
# The command runs in a subprocess on the real clock, so the time claims of
# these tokens are ten minutes off: the seconds a test run takes cannot
# change the verdict or the minutes shown.

OFF = 600


@pytest.fixture(scope="module")
def issuer() -> Iterator[LocalIssuer]:
    """Serve a local issuer's JWKS on loopback for the whole module."""
    with LocalIssuer(audience=AUDIENCE) as local:
        yield local


@pytest.fixture(scope="module")
def issuer_env(issuer: LocalIssuer) -> dict[str, str]:
    """Return what ``tokens.yaml`` reads from the environment."""
    return {"ISSUER_URL": issuer.issuer, "JWKS_URI": issuer.jwks_uri}


def explain_token(
    env: Mapping[str, str], token: str, path: str = "/admin/x", *options: str
) -> Any:
    """Explain ``GET path`` over HTTPS with ``token``; return the JSON."""
    return run_json(
        "explain", TOKENS, "GET", path, "--https", "--token", token, *options, env=env
    )


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def test_explain_token_expired_says_how_long_ago(
    issuer: LocalIssuer, issuer_env: dict[str, str]
) -> None:
    now = int(time.time())
    document = explain_token(issuer_env, issuer.mint(iat=now - 2 * OFF, exp=now - OFF))
    assert verdict(document) == (401, "token_expired", ["admin"])
    assert document["message"].startswith("Token expired: `exp` passed 10 minutes ago")


def test_explain_token_not_yet_valid_says_how_far_ahead(
    issuer: LocalIssuer, issuer_env: dict[str, str]
) -> None:
    token = issuer.mint(nbf=int(time.time()) + OFF)
    document = explain_token(issuer_env, token)
    assert verdict(document) == (401, "token_not_yet_valid", ["admin"])
    assert document["message"].startswith("Token not yet valid: `nbf` is 10 minutes")


def test_explain_token_wrong_audience_names_both(
    issuer: LocalIssuer, issuer_env: dict[str, str]
) -> None:
    document = explain_token(issuer_env, issuer.mint(aud="https://billing.example"))
    assert verdict(document) == (401, "audience_mismatch", ["admin"])
    assert document["message"] == (
        "Wrong audience: expected 'https://orders.example.test', token has "
        '"https://billing.example"'
    )


def test_explain_token_unknown_issuer_lists_configured(
    issuer: LocalIssuer, issuer_env: dict[str, str]
) -> None:
    document = explain_token(issuer_env, issuer.mint(iss="https://evil.example"))
    assert verdict(document) == (401, "issuer_unknown", ["admin"])
    assert document["message"] == (
        'Unknown issuer: token `iss` is "https://evil.example"; configured: '
        f"local ({issuer.issuer})"
    )


def test_explain_token_bad_signature_names_key(
    issuer: LocalIssuer, issuer_env: dict[str, str]
) -> None:
    header, _, signature = issuer.mint(sub="bob", roles=["reader"]).split(".")
    forged = {"iss": issuer.issuer, "aud": AUDIENCE, "sub": "bob", "roles": ["admin"]}
    forged.update(iat=int(time.time()), exp=int(time.time()) + OFF)
    payload = base64.urlsafe_b64encode(json.dumps(forged).encode()).rstrip(b"=")
    document = explain_token(issuer_env, f"{header}.{payload.decode()}.{signature}")
    assert verdict(document) == (401, "bad_signature", ["admin"])
    assert document["message"] == (
        f"Bad signature: the token does not verify with key {issuer.kid!r} of "
        "issuer 'local'"
    )


def test_explain_token_unknown_kid(
    issuer: LocalIssuer, issuer_env: dict[str, str]
) -> None:
    document = explain_token(issuer_env, issuer.mint(headers={"kid": "retired-1"}))
    assert verdict(document) == (401, "unknown_kid", ["admin"])
    assert document["message"] == (
        "Unknown key: 'retired-1' is not in the JWKS of issuer 'local'"
    )


def test_explain_token_missing_role_shows_claim_source(
    issuer: LocalIssuer, issuer_env: dict[str, str]
) -> None:
    document = explain_token(issuer_env, issuer.mint(sub="bob", roles=["reader"]))
    authentication = document["steps"][4]
    assert verdict(document) == (403, "missing_role", ["admin"])
    assert document["message"] == "Role 'admin' needed, identity 'bob' has 'reader'"
    assert (authentication["role_sources"], authentication["kid"]) == (
        {"reader": ["claim 'roles'"]},
        issuer.kid,
    )


def test_explain_token_role_map_source(
    issuer: LocalIssuer, issuer_env: dict[str, str]
) -> None:
    document = explain_token(issuer_env, issuer.mint(sub="ci-bot"), "/deploy")
    authentication = document["steps"][4]
    assert (document["status"], document["reason"]) == (200, "authorized")
    assert authentication["role_sources"] == {"deployer": ["role_map['ci-bot']"]}


def test_explain_token_keys_unreachable_answers_503(issuer: LocalIssuer) -> None:
    env = {
        "ISSUER_URL": issuer.issuer,
        "JWKS_URI": f"http://127.0.0.1:{_closed_port()}/",
    }
    document = explain_token(env, issuer.mint(sub="alice", roles=["admin"]))
    assert verdict(document) == (503, "keys_unavailable", ["admin"])
    assert "--no-verify" in document["message"]


def test_explain_no_verify_reads_claims_and_says_so(issuer: LocalIssuer) -> None:
    env = {
        "ISSUER_URL": issuer.issuer,
        "JWKS_URI": f"http://127.0.0.1:{_closed_port()}/",
    }
    token = issuer.mint(sub="alice", roles=["admin"])
    result = run(
        "explain",
        TOKENS,
        "GET",
        "/admin/x",
        "--https",
        "--token",
        token,
        "--no-verify",
        env=env,
    )
    assert result.returncode == 0
    assert result.stdout.startswith("!! NOT VERIFIED: --no-verify checked the token")


def test_explain_no_verify_still_checks_claims(
    issuer: LocalIssuer, issuer_env: dict[str, str]
) -> None:
    token = issuer.mint(aud="https://billing.example")
    document = explain_token(issuer_env, token, "/admin/x", "--no-verify")
    assert verdict(document) == (401, "audience_mismatch", ["admin"])
    assert document["warnings"][0].startswith("NOT VERIFIED")


def test_explain_token_never_printed(
    issuer: LocalIssuer, issuer_env: dict[str, str]
) -> None:
    token = issuer.mint(sub="alice", roles=["admin"])
    result = run(
        "explain",
        TOKENS,
        "GET",
        "/admin/x",
        "--https",
        "--token",
        token,
        "--format",
        "json",
        env=issuer_env,
    )
    signature = token.rsplit(".", 1)[1]
    assert result.returncode == 0
    assert token not in result.stdout
    assert signature not in result.stdout + result.stderr


@pytest.mark.parametrize(
    ("path", "claims", "https"),
    [
        pytest.param("/admin/x", {"sub": "a", "roles": ["admin"]}, True, id="role"),
        pytest.param("/admin/x", {"sub": "b", "roles": ["x"]}, True, id="no-role"),
        pytest.param("/deploy", {"sub": "ci-bot"}, True, id="role-map"),
        pytest.param("/deploy", {"sub": "ci-bot"}, False, id="insecure"),
        pytest.param("/other", {"aud": "https://else.example"}, True, id="audience"),
    ],
)
def test_explain_token_status_matches_handler(
    issuer: LocalIssuer,
    issuer_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    path: str,
    claims: dict[str, Any],
    https: bool,
) -> None:
    token = issuer.mint(claims)
    options = ["--token", token] + (["--https"] if https else [])
    document = run_json("explain", TOKENS, "GET", path, *options, env=issuer_env)

    for name, value in issuer_env.items():
        monkeypatch.setenv(name, value)
    client = Client(secure(_ok_app, TOKENS))
    base_url = "https://localhost" if https else "http://localhost"
    response = client.get(
        path, headers={"Authorization": f"Bearer {token}"}, base_url=base_url
    )

    assert document["status"] == response.status_code


# -- check with tokens ---------------------------------------------------------


def test_check_role_claims_make_any_role_holdable(issuer_env: dict[str, str]) -> None:
    result = run("check", TOKENS, env=issuer_env)
    assert result.returncode == 0
    assert result.stdout.strip().endswith("0 warnings, 0 notes")


def test_check_role_map_only_flags_unmapped_role() -> None:
    findings = run_json("check", DATA / "role-map-only.yaml")["findings"]
    assert codes(findings) == [("SH003", "warning")]
    assert findings[0]["message"].startswith("Role 'admin' of constraint 'admin'")


def test_check_other_security_warning_reported() -> None:
    findings = run_json("check", DATA / "serverless.yaml")["findings"]
    assert codes(findings) == [("SH008", "warning")]
    assert findings[0]["line"] == 8


# -- token ---------------------------------------------------------------------


def test_token_from_key_file_passes_explain(
    issuer: LocalIssuer, issuer_env: dict[str, str], tmp_path: Path
) -> None:
    key = tmp_path / "key.jwk"
    key.write_text(json.dumps(issuer.private_jwk()))
    minted = run(
        "token",
        "--key",
        key,
        "--iss",
        issuer.issuer,
        "--aud",
        AUDIENCE,
        "--sub",
        "alice",
        "--roles",
        "admin",
    )
    document = explain_token(issuer_env, minted.stdout.strip())
    assert minted.returncode == 0
    assert (document["status"], document["steps"][4]["principal"]) == (200, "alice")


def test_token_default_key_created_owner_only(tmp_path: Path) -> None:
    env = {"XDG_CACHE_HOME": str(tmp_path)}
    minted = run("token", "--iss", "http://127.0.0.1:8000", "--aud", "a", env=env)
    key = tmp_path / "securityhandler" / "dev-key.jwk"
    assert minted.returncode == 0
    assert stat.S_IMODE(key.stat().st_mode) == 0o600


def test_token_verifies_with_printed_jwks(tmp_path: Path) -> None:
    env = {"XDG_CACHE_HOME": str(tmp_path)}
    minted = run(
        "token",
        "--iss",
        "http://127.0.0.1:8000",
        "--aud",
        "a",
        "--sub",
        "carol",
        "--ttl",
        "60",
        "--claim",
        "email_verified=true",
        "--claim",
        "team=ops",
        env=env,
    )
    keys = KeySet.import_key_set(json.loads(run("token", "--jwks", env=env).stdout))
    claims = jwt.decode(minted.stdout.strip(), keys).claims
    assert (claims["sub"], claims["email_verified"], claims["team"]) == (
        "carol",
        True,
        "ops",
    )
    assert claims["exp"] - claims["iat"] == 60


def test_token_pem_key_signs_with_its_algorithm(tmp_path: Path) -> None:
    key = tmp_path / "key.pem"
    key.write_bytes(ECKey.generate_key("P-256").as_pem(private=True))
    minted = run("token", "--key", key, "--iss", "http://127.0.0.1", "--aud", "a")
    header = json.loads(base64.urlsafe_b64decode(minted.stdout.split(".")[0] + "=="))
    assert minted.returncode == 0
    assert header["alg"] == "ES256"


def test_token_public_key_refused(tmp_path: Path) -> None:
    key = tmp_path / "key.pem"
    key.write_bytes(ECKey.generate_key("P-256").as_pem(private=False))
    result = run("token", "--key", key, "--iss", "http://127.0.0.1", "--aud", "a")
    assert result.returncode == 2
    assert "holds a public key" in result.stderr


def test_token_requires_iss_and_aud() -> None:
    result = run("token", "--sub", "alice")
    assert result.returncode == 2
    assert "--iss and --aud are required" in result.stderr
