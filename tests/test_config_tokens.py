"""The ``issuers:`` section and the bearer and iap authenticators in YAML."""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pytest
from werkzeug.test import Client

from securityhandler import ConfigError, load_config, secure
from securityhandler.bearer import BearerAuthenticator, IapAuthenticator
from securityhandler.errors import SecurityWarning
from securityhandler.testing import LocalIssuer

CLOUD_RUN = "https://orders-4kq2xw7yva-ew.a.run.app"
IAP_AUDIENCE = "/projects/123456789012/apps/orders-prod"


def app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [environ.get("REMOTE_USER", "-").encode()]


@pytest.fixture
def write(tmp_path: Path) -> Callable[[str], Path]:
    def write(text: str) -> Path:
        path = tmp_path / "security.yaml"
        path.write_text(textwrap.dedent(text))
        return path

    return write


def load_error(source: Any) -> ConfigError:
    with pytest.raises(ConfigError) as raised:
        load_config(source)
    return raised.value


def test_issuers_and_bearer_built_from_yaml(write: Callable[[str], Path]) -> None:
    config = load_config(
        write(
            f"""\
            realm: orders
            issuers:
              google:
                preset: google
                audiences: [{CLOUD_RUN}]
                role_map: {{"deployer@p.iam.gserviceaccount.com": [writer]}}
              okta:
                preset: okta
                issuer: https://example.okta.com/oauth2/default
                audiences: [api://orders]
                leeway: 10
            authenticators:
              - {{type: bearer, issuers: [google, okta]}}
            """
        )
    )
    bearer = config.authenticators[0]
    assert isinstance(bearer, BearerAuthenticator)
    assert [i.name for i in bearer.login_service.issuers] == ["google", "okta"]
    assert (config.issuers["okta"].leeway, bearer.realm) == (10, "orders")


def test_bearer_from_yaml_protects_app(
    write: Callable[[str], Path], local_issuer: LocalIssuer
) -> None:
    handler = secure(
        app,
        write(
            f"""\
            issuers:
              local:
                issuer: {local_issuer.issuer}
                audiences: [{local_issuer.audience}]
                role_claims: [groups]
            authenticators:
              - {{type: bearer, issuers: [local]}}
            constraints:
              - {{paths: ["/admin/*"], roles: [admin]}}
            """
        ),
    )
    client = Client(handler)
    admin = local_issuer.mint(sub="alice", groups=["admin"])
    staff = local_issuer.mint(sub="bob", groups=["staff"])
    response = client.get("/admin/x", headers={"Authorization": f"Bearer {admin}"})
    assert (response.status_code, response.get_data()) == (200, b"alice")
    assert (
        client.get("/admin/x", headers={"Authorization": f"Bearer {staff}"}).status_code
        == 403
    )


def test_issuers_shared_between_authenticators() -> None:
    config = load_config(
        {
            "issuers": {
                "iap": {"preset": "iap", "audiences": [IAP_AUDIENCE]},
                "google": {"preset": "google", "audiences": [CLOUD_RUN]},
            },
            "authenticators": [
                {"type": "bearer", "issuers": ["google"]},
                {"type": "iap", "issuer": "iap"},
            ],
        }
    )
    bearer, iap = config.authenticators
    assert isinstance(iap, IapAuthenticator)
    assert iap.login_service.issuers == (config.issuers["iap"],)
    assert bearer.login_service.issuers[0].jwks is config.issuers["google"].jwks


def test_trust_serverless_authorization_warns(write: Callable[[str], Path]) -> None:
    path = write(
        f"""\
        issuers:
          google: {{preset: google, audiences: [{CLOUD_RUN}]}}
        authenticators:
          - type: bearer
            issuers: [google]
            trust_serverless_authorization: true
        """
    )
    with pytest.warns(SecurityWarning, match="X-Serverless-Authorization"):
        config = load_config(path)
    assert config.authenticators[0].trust_serverless_authorization


ISSUER = f"issuers:\n  google:\n    preset: google\n    audiences: [{CLOUD_RUN}]\n"

FILE_ERRORS = [
    pytest.param(
        "issuers:\n  corp:\n    issuer: https://idp.test\n    audience: [a]\n",
        4,
        "issuers.corp.audience",
        "Unknown key 'audience'",
        id="unknown-key",
    ),
    pytest.param(
        "issuers:\n  corp:\n    issuer: https://idp.test\n",
        2,
        "issuers.corp.audiences",
        "At least one audience",
        id="audiences-missing",
    ),
    pytest.param(
        "issuers:\n  corp:\n    issuer: http://idp.test\n    audiences: [a]\n",
        3,
        "issuers.corp.issuer",
        "Expected an https:// URL",
        id="issuer-http",
    ),
    pytest.param(
        "issuers:\n  corp:\n    preset: auth0\n",
        3,
        "issuers.corp.preset",
        "expected one of google, iap, okta, entra, keycloak",
        id="preset-unknown",
    ),
    pytest.param(
        "issuers:\n  iap:\n    preset: iap\n    audiences:\n      - /projects/x\n",
        4,
        "issuers.iap.audiences",
        "/projects/NUMBER/global/backendServices/ID",
        id="iap-audience-shape",
    ),
    pytest.param(
        ISSUER + "    algorithms: [HS256]\n",
        5,
        "issuers.google.algorithms",
        "Algorithm 'HS256' is not accepted",
        id="symmetric-algorithm",
    ),
    pytest.param(
        ISSUER + "    leeway: -5\n",
        5,
        "issuers.google.leeway",
        "an integer >= 0",
        id="leeway-negative",
    ),
    pytest.param(
        ISSUER + "    role_map: {a@b.test: writer}\n",
        5,
        "issuers.google.role_map.a@b.test",
        "expected a list of role names",
        id="role-map-string",
    ),
    pytest.param(
        ISSUER + "authenticators:\n  - {type: bearer, issuers: [okta]}\n",
        6,
        "authenticators[0].issuers[0]",
        "Unknown issuer 'okta': expected one of google",
        id="bearer-unknown-issuer",
    ),
    pytest.param(
        ISSUER + "authenticators:\n  - {type: bearer, issuers: []}\n",
        6,
        "authenticators[0].issuers",
        "expected at least one issuer name",
        id="bearer-no-issuers",
    ),
    pytest.param(
        ISSUER + "authenticators:\n  - {type: bearer, issuer: google}\n",
        6,
        "authenticators[0].issuer",
        "Unknown key 'issuer'",
        id="bearer-issuer-singular",
    ),
    pytest.param(
        ISSUER + "authenticators:\n  - {type: iap, issuer: google}\n",
        6,
        "authenticators[0].issuer",
        "needs an issuer with 'preset: iap'",
        id="iap-not-iap-preset",
    ),
    pytest.param(
        ISSUER
        + "  again:\n    issuer: https://accounts.google.com\n    audiences: [a]\n"
        + "authenticators:\n  - {type: bearer, issuers: [google, again]}\n",
        9,
        "authenticators[0].issuers",
        "both accept 'iss' 'https://accounts.google.com'",
        id="same-iss-twice",
    ),
]


@pytest.mark.parametrize(("text", "line", "key", "fragment"), FILE_ERRORS)
def test_token_config_error_located(
    write: Callable[[str], Path], text: str, line: int, key: str, fragment: str
) -> None:
    path = write(text)
    error = load_error(path)
    assert (error.file, error.line, error.key) == (str(path), line, key)
    assert fragment in error.description


def test_token_config_error_in_mapping_names_key() -> None:
    error = load_error({"issuers": {"corp": {"issuer": "https://i.test"}}})
    assert (error.line, error.key) == (None, "issuers.corp.audiences")
