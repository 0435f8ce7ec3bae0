"""The audit trail: one INFO record per denial and per authentication.

Records go to the ``securityhandler.audit`` logger with the structured
fields in ``record.audit`` (a dict), which the JSON formatter emits as the
payload. No field ever holds a token, password, cookie or the
``Authorization`` header: the callers pass only names, codes and ids.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIEnvironment

AUDIT_LOGGER = "securityhandler.audit"

log = logging.getLogger(AUDIT_LOGGER)


def trace_id(environ: WSGIEnvironment) -> str | None:
    """Return the trace id of ``traceparent`` or ``X-Cloud-Trace-Context``."""
    traceparent: str | None = environ.get("HTTP_TRACEPARENT")
    if traceparent:
        parts = traceparent.split("-")
        if len(parts) >= 4 and len(parts[1]) == 32 and _is_hex(parts[1]):
            return parts[1].lower()
    cloud: str | None = environ.get("HTTP_X_CLOUD_TRACE_CONTEXT")
    if cloud:
        trace = cloud.split("/", 1)[0]
        if 0 < len(trace) <= 32 and _is_hex(trace):
            return trace.lower()
    return None


_HEX = frozenset("0123456789abcdefABCDEF")


def _is_hex(value: str) -> bool:
    return _HEX.issuperset(value)


def audit(environ: WSGIEnvironment, decision: str, reason: str, **fields: Any) -> None:
    """Write one audit record for the request in ``environ``.

    :param decision: ``allow``, ``deny``, ``authenticated`` or ``error``.
    :param reason: the reason code.
    :param fields: ``constraint``, ``principal``, ``issuer``, ``kid``,
        ``auth_type`` and the like; ``None`` values are dropped.
    """
    if not log.isEnabledFor(logging.INFO):
        return
    record: dict[str, Any] = {
        "decision": decision,
        "reason": reason,
        "method": environ.get("REQUEST_METHOD"),
        "path": _text(environ.get("PATH_INFO", "")),
        "client_ip": environ.get("REMOTE_ADDR"),
    }
    trace = trace_id(environ)
    if trace:
        record["trace"] = trace
    record.update((k, v) for k, v in fields.items() if v is not None)
    # makeRecord + handle skips findCaller's stack walk: the caller is
    # always this function, so the source location says nothing.
    log.handle(
        log.makeRecord(
            AUDIT_LOGGER,
            logging.INFO,
            __file__,
            0,
            "%s %s %s %s",
            (decision, reason, record["method"], record["path"]),
            None,
            extra={"audit": record},
        )
    )


def _text(value: str) -> str:
    try:
        return value.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return value
