"""JSON lines for Cloud Logging: the formatter, configure_logging, the access log."""

from __future__ import annotations

import io
import json
import logging
import warnings
from collections.abc import Iterator
from datetime import timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from gunicorn.config import Config
from werkzeug.test import Client, EnvironBuilder

from securityhandler import (
    Constraint,
    ConstraintMapping,
    ConstraintSecurityHandler,
    SecurityWarning,
)
from securityhandler.gunicorn import JsonLogger
from securityhandler.logs import (
    TRACE_KEY,
    JsonFormatter,
    configure_logging,
    http_request,
)

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
CLOUD_TRACE = "105445aa7843bc8bf206b12000100000/1;o=1"


def _record(
    msg: str = "hello %s",
    args: tuple[Any, ...] = ("world",),
    level: int = logging.INFO,
    **extra: Any,
) -> logging.LogRecord:
    record = logging.LogRecord("app.module", level, "app.py", 7, msg, args, None)
    record.__dict__.update(extra)
    return record


def _line(record: logging.LogRecord, project: str | None = None) -> dict[str, Any]:
    line = JsonFormatter(project).format(record)
    assert "\n" not in line
    return json.loads(line)  # type: ignore[no-any-return]


class _Lines(logging.Handler):
    """Keep every record as the JSON line the formatter makes of it.

    The formatter is built per record, so it reads ``GOOGLE_CLOUD_PROJECT``
    as set by the test at that moment.
    """

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(JsonFormatter().format(record))

    def parsed(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.lines]


@pytest.fixture
def audit_lines() -> Iterator[_Lines]:
    """Capture the ``securityhandler.audit`` logger's records as JSON lines."""
    logger = logging.getLogger("securityhandler.audit")
    handler = _Lines()
    old_level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield handler
    logger.removeHandler(handler)
    logger.setLevel(old_level)


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """Undo what configure_logging and gunicorn's logger set globally."""
    root = logging.getLogger()
    loggers = [root, logging.getLogger("gunicorn.error")]
    loggers.append(logging.getLogger("gunicorn.access"))
    before = {id(lg): (list(lg.handlers), lg.level) for lg in loggers}
    yield
    for logger in loggers:
        handlers, level = before[id(logger)]
        logger.handlers[:] = handlers
        logger.setLevel(level)
    logging.captureWarnings(False)


def _guarded_app() -> ConstraintSecurityHandler:
    def app(environ: Any, start_response: Any) -> list[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    forbidden = Constraint.forbidden(name="no-admin")
    return ConstraintSecurityHandler(app, [ConstraintMapping(("/admin/*",), forbidden)])


def test_formatter_writes_cloud_logging_fields() -> None:
    record = _record()
    record.created = 1700000000.25
    line = _line(record)
    assert line["severity"] == "INFO"
    assert line["message"] == "hello world"
    assert (line["time"], line["logger"]) == (
        "2023-11-14T22:13:20.250000Z",
        "app.module",
    )


@pytest.mark.parametrize(
    ("level", "expected"),
    [
        pytest.param(logging.DEBUG, "DEBUG", id="debug"),
        pytest.param(logging.INFO, "INFO", id="info"),
        pytest.param(logging.WARNING, "WARNING", id="warning"),
        pytest.param(logging.ERROR, "ERROR", id="error"),
        pytest.param(logging.CRITICAL, "CRITICAL", id="critical"),
        pytest.param(25, "INFO", id="custom-between-info-and-warning"),
        pytest.param(5, "DEFAULT", id="below-debug"),
    ],
)
def test_formatter_severity_uses_cloud_names(level: int, expected: str) -> None:
    assert _line(_record(level=level))["severity"] == expected


@pytest.mark.parametrize(
    ("headers", "trace"),
    [
        pytest.param(
            {"traceparent": TRACEPARENT}, "4bf92f3577b34da6a3ce929d0e0e4736", id="w3c"
        ),
        pytest.param(
            {"X-Cloud-Trace-Context": CLOUD_TRACE},
            "105445aa7843bc8bf206b12000100000",
            id="x-cloud-trace-context",
        ),
    ],
)
def test_audit_line_carries_project_trace(
    audit_lines: _Lines,
    monkeypatch: pytest.MonkeyPatch,
    headers: dict[str, str],
    trace: str,
) -> None:
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "demo-project")
    response = Client(_guarded_app()).get("/admin/x", headers=headers)
    (line,) = audit_lines.parsed()
    assert response.status_code == 403
    assert line[TRACE_KEY] == f"projects/demo-project/traces/{trace}"


def test_audit_line_plain_trace_without_project(
    audit_lines: _Lines, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("GOOGLE_CLOUD_PROJECT", raising=False)
    Client(_guarded_app()).get("/admin/x", headers={"traceparent": TRACEPARENT})
    (line,) = audit_lines.parsed()
    assert line[TRACE_KEY] == "4bf92f3577b34da6a3ce929d0e0e4736"


def test_audit_line_payload_and_http_request(audit_lines: _Lines) -> None:
    Client(_guarded_app()).get(
        "/admin/x?token=s3cr3t-query", environ_base={"REMOTE_ADDR": "203.0.113.7"}
    )
    (line,) = audit_lines.parsed()
    assert line["audit"]["constraint"] == "no-admin"
    assert line["audit"]["reason"] == "forbidden"
    assert line["httpRequest"] == {
        "requestMethod": "GET",
        "requestUrl": "/admin/x",
        "status": 403,
        "remoteIp": "203.0.113.7",
    }


def test_audit_line_never_holds_query(audit_lines: _Lines) -> None:
    Client(_guarded_app()).get("/admin/x?token=s3cr3t-query")
    assert audit_lines.lines
    assert not [line for line in audit_lines.lines if "s3cr3t-query" in line]


class _BadRepr:
    def __repr__(self) -> str:
        raise RuntimeError("no repr")


def test_formatter_reprs_unserialisable_fields() -> None:
    audit = {
        "thing": SimpleNamespace(a=1),
        "roles": frozenset({"b", "a"}),
        "ratio": float("nan"),
        "broken": _BadRepr(),
        7: "int key",
    }
    line = _line(_record(audit=audit))
    assert line["audit"]["thing"] == "namespace(a=1)"
    assert (line["audit"]["roles"], line["audit"]["ratio"]) == (["a", "b"], "nan")
    assert (line["audit"]["broken"], line["audit"]["7"]) == (
        "<unrepresentable _BadRepr>",
        "int key",
    )


def test_formatter_bad_format_args_kept() -> None:
    line = _line(_record("%d items", ("many",)))
    assert line["message"] == "'%d items' % ('many',)"


def test_formatter_exception_in_message_and_stack_trace() -> None:
    logger = logging.getLogger("tests.logs.exception")
    handler = _Lines()
    logger.addHandler(handler)
    try:
        raise ValueError("boom")
    except ValueError:
        logger.exception("Handling %s failed", "/x")
    finally:
        logger.removeHandler(handler)
    (line,) = handler.parsed()
    assert line["severity"] == "ERROR"
    assert line["stack_trace"].endswith("ValueError: boom")
    assert line["message"] == "Handling /x failed\n" + line["stack_trace"]


def test_formatter_ignores_unknown_extras() -> None:
    line = _line(_record(request=SimpleNamespace(cookie="session=abc")))
    assert "session=abc" not in json.dumps(line)


def test_http_request_fields_from_environ() -> None:
    environ = EnvironBuilder(
        path="/caf%C3%A9",
        query_string="token=abc",
        headers={"User-Agent": "curl/8"},
        environ_base={"REMOTE_ADDR": "203.0.113.9"},
    ).get_environ()
    fields = http_request(environ, 200, timedelta(seconds=1, microseconds=5), 42)
    assert fields["requestUrl"] == "/café"
    assert (fields["latency"], fields["responseSize"]) == ("1.000005s", "42")
    assert (fields["remoteIp"], fields["userAgent"]) == ("203.0.113.9", "curl/8")


@pytest.mark.usefixtures("restore_logging")
def test_configure_logging_replaces_its_handler() -> None:
    stream = io.StringIO()
    configure_logging("debug", stream=io.StringIO())
    configure_logging("warning", stream=stream)
    logging.getLogger("tests.logs.configure").warning("disk %s", "full")
    mine = [
        h
        for h in logging.getLogger().handlers
        if h.formatter.__class__ is JsonFormatter
    ]
    assert len(mine) == 1
    assert json.loads(stream.getvalue())["message"] == "disk full"
    assert logging.getLogger().level == logging.WARNING


@pytest.mark.usefixtures("restore_logging")
def test_configure_logging_turns_warnings_into_lines() -> None:
    stream = io.StringIO()
    configure_logging(stream=stream)
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.warn("Plain password for user alice", SecurityWarning, stacklevel=1)
    line = json.loads(stream.getvalue())
    assert line["severity"] == "WARNING"
    assert "SecurityWarning: Plain password for user alice" in line["message"]


def test_configure_logging_unknown_level_named() -> None:
    with pytest.raises(ValueError, match="'verbose'"):
        configure_logging("verbose")


def _access_line(environ: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> str:
    cfg = Config()
    cfg.set("accesslog", "-")
    logger = JsonLogger(cfg)
    response = SimpleNamespace(status="200 OK", status_code=200, sent=3, headers=[])
    logger.access(response, None, environ, timedelta(milliseconds=12))
    return capsys.readouterr().out


@pytest.mark.usefixtures("restore_logging")
def test_access_line_json_with_http_request(capsys: pytest.CaptureFixture[str]) -> None:
    # gunicorn's Response needs a live socket: a stand-in carries the
    # attributes the access logger reads (status, status_code, sent).
    environ = EnvironBuilder(
        path="/orders", headers={"traceparent": TRACEPARENT}
    ).get_environ()
    line = json.loads(_access_line(environ, capsys))
    assert line["message"] == "GET /orders 200"
    assert line["httpRequest"]["latency"] == "0.012000s"
    assert line[TRACE_KEY].endswith("4bf92f3577b34da6a3ce929d0e0e4736")


@pytest.mark.parametrize(
    ("headers", "query", "secret"),
    [
        pytest.param(
            {"Authorization": "Bearer eyJ.s3cr3t-token.sig"},
            "",
            "s3cr3t-token",
            id="authorization",
        ),
        pytest.param(
            {"Cookie": "session=s3cr3t-cookie"}, "", "s3cr3t-cookie", id="cookie"
        ),
        pytest.param({}, "access_token=s3cr3t-query", "s3cr3t-query", id="query"),
        pytest.param(
            {"Referer": "https://example.com/?code=s3cr3t-ref"},
            "",
            "s3cr3t-ref",
            id="referer-query",
        ),
    ],
)
@pytest.mark.usefixtures("restore_logging")
def test_access_line_never_holds_secret(
    capsys: pytest.CaptureFixture[str],
    headers: dict[str, str],
    query: str,
    secret: str,
) -> None:
    # gunicorn's Response needs a live socket: see the test above.
    environ = EnvironBuilder(
        path="/orders", query_string=query, headers=headers
    ).get_environ()
    out = _access_line(environ, capsys)
    assert json.loads(out)["httpRequest"]["requestUrl"] == "/orders"
    assert secret not in out


@pytest.mark.parametrize(
    ("service", "graceful", "warned"),
    [
        pytest.param("orders", 10, True, id="cloud-run-at-window"),
        pytest.param("orders", 8, False, id="cloud-run-under-window"),
        pytest.param(None, 30, False, id="not-cloud-run"),
    ],
)
@pytest.mark.usefixtures("restore_logging")
def test_gunicorn_logger_graceful_timeout_warning(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    service: str | None,
    graceful: int,
    warned: bool,
) -> None:
    if service is None:
        monkeypatch.delenv("K_SERVICE", raising=False)
    else:
        monkeypatch.setenv("K_SERVICE", service)
    cfg = Config()
    cfg.set("graceful_timeout", graceful)
    JsonLogger(cfg)
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert [line["severity"] for line in lines] == (["WARNING"] if warned else [])
    assert all("graceful_timeout" in line["message"] for line in lines)
