"""JSON log lines that Cloud Logging reads: one object per line.

Cloud Run sends each line a container writes to Cloud Logging; a line that
is a JSON object becomes a structured entry, where ``severity``,
``message``, ``time``, ``httpRequest`` and ``logging.googleapis.com/trace``
are lifted into the entry and every other key stays in ``jsonPayload``.

The library never installs a handler by itself: the gunicorn config module
(:mod:`securityhandler.gunicorn`) or the application calls
:func:`configure_logging`.

The formatter reads three ``extra`` fields and nothing else a caller
attached, since arbitrary extras (Django's ``request``, for one) can carry
query strings and cookies:

- ``audit``: the dict :func:`securityhandler.audit.audit` attaches, emitted
  under ``"audit"`` and turned into ``httpRequest`` as far as it goes;
- ``http_request``: a dict in Cloud Logging's ``HttpRequest`` shape, as
  :func:`http_request` builds it;
- ``trace``: a trace id, as :func:`securityhandler.audit.trace_id` returns.
"""

from __future__ import annotations

import json
import logging
import math
import os
import sys
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from typing import IO, TYPE_CHECKING, Any

from .audit import _text

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIEnvironment

#: The key under which Cloud Logging looks for the trace of an entry.
TRACE_KEY = "logging.googleapis.com/trace"
#: The key under which Cloud Logging looks for the source location.
SOURCE_KEY = "logging.googleapis.com/sourceLocation"

# Cloud Logging's LogSeverity names for Python's levels, highest first.
_SEVERITIES = (
    (logging.CRITICAL, "CRITICAL"),
    (logging.ERROR, "ERROR"),
    (logging.WARNING, "WARNING"),
    (logging.INFO, "INFO"),
    (logging.DEBUG, "DEBUG"),
)
_LEVELS = {
    "DEBUG": logging.DEBUG,
    "INFO": logging.INFO,
    "WARNING": logging.WARNING,
    "ERROR": logging.ERROR,
    "CRITICAL": logging.CRITICAL,
}
# Nesting deeper than this is written as repr: it guards against cycles.
_MAX_DEPTH = 8
# Marks the root handler configure_logging installed, so a second call
# replaces it instead of doubling every line.
_HANDLER_FLAG = "_securityhandler_json"


def severity(levelno: int) -> str:
    """Return the Cloud Logging severity name for a Python log level.

    A custom level takes the name of the standard level at or below it;
    anything under ``DEBUG`` is ``DEFAULT``.
    """
    for level, name in _SEVERITIES:
        if levelno >= level:
            return name
    return "DEFAULT"


class JsonFormatter(logging.Formatter):
    """Format a record as one JSON object on one line, for Cloud Logging.

    The output never raises: a value that JSON cannot hold is written as its
    ``repr``, and a message whose arguments do not fit its format string is
    written with both shown.

    :param project: the Google Cloud project that prefixes trace ids
        (``projects/<project>/traces/<id>``, the form Cloud Logging
        correlates); default: ``GOOGLE_CLOUD_PROJECT``. Cloud Run does not
        set that variable: deploy with ``--set-env-vars
        GOOGLE_CLOUD_PROJECT=<project>``. Without a project the plain trace id
        is written.
    """

    def __init__(self, project: str | None = None) -> None:
        super().__init__()
        if project is None:
            project = os.environ.get("GOOGLE_CLOUD_PROJECT") or None
        self.project = project

    def format(self, record: logging.LogRecord) -> str:
        """Return ``record`` as a single line of JSON."""
        payload: dict[str, Any] = {
            "severity": severity(record.levelno),
            "message": _message(record),
            "time": _rfc3339(record.created),
            "logger": record.name,
        }
        if record.levelno >= logging.WARNING:
            payload[SOURCE_KEY] = {
                "file": record.pathname,
                "line": str(record.lineno),
                "function": record.funcName,
            }

        # Errors: the traceback in message (where Error Reporting looks
        # first) and on its own in stack_trace.
        stack = self._stack(record)
        if stack:
            payload["message"] = f"{payload['message']}\n{stack}"
            payload["stack_trace"] = stack

        audit = getattr(record, "audit", None)
        if isinstance(audit, Mapping):
            payload["audit"] = _jsonable(audit)
        request = _request_fields(record, audit)
        if request:
            payload["httpRequest"] = request
        trace = _trace(record, audit)
        if trace:
            payload[TRACE_KEY] = self.trace_name(trace)

        return json.dumps(payload, allow_nan=False)

    def trace_name(self, trace: str) -> str:
        """Return the trace field value for the trace id ``trace``."""
        if self.project:
            return f"projects/{self.project}/traces/{trace}"
        return trace

    def _stack(self, record: logging.LogRecord) -> str:
        parts = []
        if record.exc_info:
            if not record.exc_text:
                record.exc_text = self.formatException(record.exc_info)
            parts.append(record.exc_text)
        elif record.exc_text:
            parts.append(record.exc_text)
        if record.stack_info:
            parts.append(self.formatStack(record.stack_info))
        return "\n".join(parts)


def _message(record: logging.LogRecord) -> str:
    try:
        return record.getMessage()
    except Exception:  # A bad format string must not lose the line.
        return f"{_repr(record.msg)} % {_repr(record.args)}"


def _rfc3339(created: float) -> str:
    stamp = datetime.fromtimestamp(created, tz=timezone.utc)
    return stamp.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _trace(record: logging.LogRecord, audit: object) -> str | None:
    trace = getattr(record, "trace", None)
    if trace is None and isinstance(audit, Mapping):
        trace = audit.get("trace")
    return trace if isinstance(trace, str) and trace else None


def _request_fields(record: logging.LogRecord, audit: object) -> dict[str, Any]:
    given = getattr(record, "http_request", None)
    if isinstance(given, Mapping):
        return _jsonable(given)  # type: ignore[no-any-return]
    if not isinstance(audit, Mapping):
        return {}
    fields = {
        "requestMethod": audit.get("method"),
        "requestUrl": audit.get("path"),
        "status": audit.get("status"),
        "remoteIp": audit.get("client_ip"),
    }
    return {k: _jsonable(v) for k, v in fields.items() if v is not None}


def _jsonable(value: object, depth: int = 0) -> Any:
    """Return ``value`` with everything JSON cannot hold turned into a repr."""
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else _repr(value)
    if depth >= _MAX_DEPTH:
        return _repr(value)
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v, depth + 1) for v in value]
    if isinstance(value, (set, frozenset)):
        return [_jsonable(v, depth + 1) for v in sorted(value, key=_repr)]
    return _repr(value)


def _repr(value: object) -> str:
    try:
        return repr(value)
    except Exception:
        return f"<unrepresentable {type(value).__name__}>"


def http_request(
    environ: WSGIEnvironment,
    status: int | None = None,
    latency: timedelta | None = None,
    response_size: int | None = None,
) -> dict[str, Any]:
    """Return Cloud Logging's ``HttpRequest`` fields for a WSGI request.

    ``requestUrl`` is the path only: a query string can carry tokens or
    other secrets, so it is left out. No header other than ``User-Agent``
    is read.

    :param environ: the request's WSGI environ.
    :param status: the response status code, if known.
    :param latency: the time taken to answer, if known.
    :param response_size: the bytes of the response, if known.
    """
    path = _text(environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", ""))
    fields: dict[str, Any] = {
        "requestMethod": environ.get("REQUEST_METHOD"),
        "requestUrl": path or "/",
        "status": status,
        "remoteIp": environ.get("REMOTE_ADDR"),
        "userAgent": environ.get("HTTP_USER_AGENT"),
        "protocol": environ.get("SERVER_PROTOCOL"),
    }
    if latency is not None:
        fields["latency"] = f"{latency.total_seconds():.6f}s"
    if response_size is not None:
        # LogEntry's JSON form writes int64 values as strings.
        fields["responseSize"] = str(response_size)
    return {k: v for k, v in fields.items() if v is not None}


def configure_logging(
    level: int | str = "INFO", stream: IO[str] | None = None
) -> logging.Handler:
    """Send every record to ``stream`` as JSON lines, through the root logger.

    Replaces the handler an earlier call installed, leaves other handlers
    alone, and routes :mod:`warnings` (a
    :class:`~securityhandler.errors.SecurityWarning`, say) through logging
    so that they come out as JSON lines too.

    :param level: the root logger's level, a name or a number.
    :param stream: where lines go; default ``sys.stderr``.
    :return: the installed handler.
    :raises ValueError: for an unknown level name.
    """
    if isinstance(level, str):
        name = level.strip().upper()
        if name not in _LEVELS:
            raise ValueError(
                f"Log level {level!r} is not one of {', '.join(_LEVELS).lower()}"
            )
        level = _LEVELS[name]

    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, _HANDLER_FLAG, False)]:
        root.removeHandler(old)
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(JsonFormatter())
    setattr(handler, _HANDLER_FLAG, True)
    root.addHandler(handler)
    root.setLevel(level)
    logging.captureWarnings(True)
    return handler
