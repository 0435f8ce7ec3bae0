"""Gunicorn settings for Cloud Run, read with ``-c python:securityhandler.gunicorn``.

Run::

    gunicorn -c python:securityhandler.gunicorn myproject.wsgi:application

Environment variables tune it:

- ``PORT``: the port to listen on, which Cloud Run sets; 8080.
- ``BIND_HOST``: the address to listen on; ``0.0.0.0``, every interface,
  as Cloud Run needs. ``127.0.0.1`` keeps a local run private.
- ``WEB_CONCURRENCY``: worker processes; the CPUs this process may run on.
- ``GUNICORN_THREADS``: threads per worker; 8.
- ``GUNICORN_GRACEFUL_TIMEOUT``: seconds in-flight requests get after
  SIGTERM; 8.
- ``FORWARDED_ALLOW_IPS``: peers trusted for ``X-Forwarded-Proto``; ``*``.
- ``LOG_LEVEL``: ``debug``, ``info``, ``warning``, ``error`` or
  ``critical``; ``info``.
- ``GOOGLE_CLOUD_PROJECT``: prefixes trace ids so that Cloud Logging
  correlates the lines of one request; Cloud Run does not set it.

Gunicorn's own ``GUNICORN_CMD_ARGS`` and command-line options override these
settings. A value that is not what a variable needs stops gunicorn with an
error naming the variable, except where gunicorn reads the variable itself
before this module: a non-integer ``WEB_CONCURRENCY`` fails with gunicorn's
traceback, and a bad ``FORWARDED_ALLOW_IPS`` entry with gunicorn's message
naming the entry.

Logging: every line gunicorn and the application write through
:mod:`logging` is a JSON object (:mod:`securityhandler.logs`) on stdout
(access log) or stderr (everything else), which Cloud Logging parses.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import re
from typing import Any

from gunicorn import glogging

from .audit import trace_id
from .errors import ConfigError
from .logs import JsonFormatter, configure_logging, http_request

_INTEGER = re.compile(r"\s*\d{1,9}\s*")
_LOG_LEVELS = ("debug", "info", "warning", "error", "critical")
# Seconds Cloud Run waits between SIGTERM and SIGKILL.
_SIGTERM_WINDOW = 10


def _env_int(name: str, default: int, minimum: int, maximum: int) -> int:
    """Return the integer in environment variable ``name``, or ``default``.

    :raises ConfigError: naming the variable, for anything but a whole
        number from ``minimum`` to ``maximum``.
    """
    value = os.environ.get(name)
    if value is None:
        return default
    number = int(value) if _INTEGER.fullmatch(value) else None
    if number is None or not minimum <= number <= maximum:
        raise ConfigError(
            f"Environment variable {name} must be a whole number from "
            f"{minimum} to {maximum}, got {value[:40]!r}"
        )
    return number


def _env_level(name: str, default: str) -> str:
    """Return the log level in environment variable ``name``, or ``default``."""
    value = os.environ.get(name, default)
    if value.strip().lower() not in _LOG_LEVELS:
        raise ConfigError(
            f"Environment variable {name} must be one of "
            f"{', '.join(_LOG_LEVELS)}, got {value[:40]!r}"
        )
    return value.strip().lower()


def _env_host(name: str, default: str) -> str:
    """Return the IP address in environment variable ``name`` as gunicorn binds it.

    :raises ConfigError: naming the variable, for anything but an IP address.
    """
    value = os.environ.get(name, default)
    try:
        address = ipaddress.ip_address(value.strip())
    except ValueError:
        raise ConfigError(
            f"Environment variable {name} must be an IP address such as "
            f"127.0.0.1 or ::1, got {value[:40]!r}"
        ) from None
    return f"[{address}]" if address.version == 6 else str(address)


def _cpu_count() -> int:
    """Return how many CPUs this process may run on (at least 1)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0)) or 1
    return os.cpu_count() or 1


class JsonLogger(glogging.Logger):  # type: ignore[misc]
    """Gunicorn's logger, writing JSON lines for Cloud Logging.

    The error log and the root logger (the application's and
    securityhandler's records, the audit trail among them) go to stderr,
    the access log to stdout. An access line has ``httpRequest`` and the
    trace, and never holds a query string, a cookie or an ``Authorization``
    header: unlike gunicorn's format, no header but ``User-Agent`` is read.

    On Cloud Run (``K_SERVICE`` set), a graceful timeout that does not fit
    the SIGTERM window is logged as a warning at start-up.
    """

    def setup(self, cfg: Any) -> None:
        """Set gunicorn's handlers up, then make every one of them write JSON."""
        super().setup(cfg)
        formatter = JsonFormatter()
        for logger in (self.error_log, self.access_log):
            for handler in logger.handlers:
                handler.setFormatter(formatter)
        configure_logging(cfg.loglevel)
        if os.environ.get("K_SERVICE") and cfg.graceful_timeout >= _SIGTERM_WINDOW:
            self.warning(
                "graceful_timeout is %s s, not under Cloud Run's %s s between "
                "SIGTERM and SIGKILL: requests still running then are cut off",
                cfg.graceful_timeout,
                _SIGTERM_WINDOW,
            )

    def access(
        self,
        resp: Any,
        req: Any,
        environ: dict[str, Any],
        request_time: datetime.timedelta,
    ) -> None:
        """Write the access line of one request."""
        # Gunicorn's own test (access_log_enabled) is not in every supported
        # version; a handler on the access logger is what it amounts to.
        if not self.access_log.hasHandlers():
            return
        status = getattr(resp, "status_code", None)
        if not isinstance(status, int):
            status = _status_code(getattr(resp, "status", None))
        sent = getattr(resp, "sent", None)
        fields = http_request(
            environ,
            status=status,
            latency=request_time,
            response_size=sent if isinstance(sent, int) else None,
        )
        self.access_log.info(
            "%s %s %s",
            fields.get("requestMethod", "-"),
            fields.get("requestUrl", "-"),
            status if status is not None else "-",
            extra={"http_request": fields, "trace": trace_id(environ)},
        )


def _status_code(status: object) -> int | None:
    if isinstance(status, str) and status[:3].isdigit():
        return int(status[:3])
    return None


# Cloud Run sends requests to $PORT on every interface of the container.
_host = _env_host("BIND_HOST", "0.0.0.0")  # noqa: S104
bind = f"{_host}:{_env_int('PORT', 8080, 1, 65535)}"

# Threads, not processes, absorb Cloud Run's concurrency (80 requests per
# instance by default): workers x threads should match --concurrency.
worker_class = "gthread"
workers = _env_int("WEB_CONCURRENCY", _cpu_count(), 1, 1024)
threads = _env_int("GUNICORN_THREADS", 8, 1, 1024)

# Cloud Run enforces its own request timeout (--timeout, 5 minutes by
# default); gunicorn's would kill a worker mid-request for no gain.
timeout = 0
# Cloud Run sends SIGTERM, then SIGKILL 10 seconds later: in-flight requests
# get 8 of those, which leaves gunicorn time to reap its workers.
graceful_timeout = _env_int("GUNICORN_GRACEFUL_TIMEOUT", 8, 0, 3600)

# Trust X-Forwarded-Proto from any peer. Safe on Cloud Run only: the
# container's port is reachable solely through Google's front end, which
# terminates TLS and sets X-Forwarded-Proto itself, and its addresses are not
# fixed, so no list could name them. Anywhere a client can reach gunicorn
# directly (a VM, a pod with a public port) it could claim HTTPS and pass
# transport constraints: there, set FORWARDED_ALLOW_IPS to the proxy's
# addresses.
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "*")
# Only the header Cloud Run's front end sets decides the scheme, and no
# header may set SCRIPT_NAME: with every peer trusted, gunicorn's defaults
# would let any client move the application's mount point.
secure_scheme_headers = {"X-FORWARDED-PROTO": "https"}
forwarder_headers = ""

# Nobody can reach a control socket inside a Cloud Run container, and the
# non-root user has no home directory to put one in.
control_socket_disable = True

accesslog = "-"
errorlog = "-"
loglevel = _env_level("LOG_LEVEL", "info")
logger_class = JsonLogger
