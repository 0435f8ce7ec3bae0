"""Serve the demo under gunicorn over HTTPS, in the foreground."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gunicorn.app.base import BaseApplication

from ..config import secure
from ..handler import ConstraintSecurityHandler

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication

    from .tls import Certificate


def demo_app(config: Path) -> WSGIApplication:
    """Return the Flask example guarded by ``config`` instead of its own file.

    The example wraps its views in a handler built from the packaged
    ``security.yaml``; the demo puts the views behind one built from its
    effective configuration, which adds the local issuer.
    """
    from .app import app

    packaged = app.wsgi_app
    assert isinstance(packaged, ConstraintSecurityHandler)
    return secure(packaged.app, config)


class DemoServer(BaseApplication):  # type: ignore[misc]
    """Gunicorn, configured in code, serving an application already loaded.

    :param app: the WSGI application.
    :param options: gunicorn settings by name (``bind``, ``worker_class`` ...).
    """

    def __init__(self, app: WSGIApplication, options: Mapping[str, Any]) -> None:
        self.application = app
        self.options = options
        super().__init__()

    def load_config(self) -> None:
        """Apply :attr:`options` to gunicorn's configuration.

        A setting this gunicorn does not have is skipped: the oldest one
        supported predates ``control_socket_disable``, and has no control
        socket to disable.
        """
        for name, value in self.options.items():
            if name in self.cfg.settings:
                self.cfg.set(name, value)

    def load(self) -> WSGIApplication:
        """Return the application."""
        return self.application


def serve(
    app: WSGIApplication,
    port: int,
    certificate: Certificate,
    on_ready: Callable[[int], None],
) -> int:
    """Run ``app`` over HTTPS on ``127.0.0.1:port`` with gthread workers.

    :param port: the port; ``0`` lets the system pick a free one.
    :param certificate: the server's certificate and key.
    :param on_ready: called with the bound port once gunicorn listens.
    :return: gunicorn's exit status (0 after SIGTERM or Ctrl-C).
    """

    def when_ready(arbiter: Any) -> None:
        on_ready(arbiter.LISTENERS[0].sock.getsockname()[1])

    options = {
        "bind": f"127.0.0.1:{port}",
        "certfile": str(certificate.cert),
        "keyfile": str(certificate.key),
        "worker_class": "gthread",
        "workers": 1,
        "threads": 4,
        "graceful_timeout": 5,
        "accesslog": "-",
        "proc_name": "securityhandler-demo",
        # No runtime control socket in the user's home: a demo is stopped
        # with Ctrl-C, and two demos would contend for the one path.
        "control_socket_disable": True,
        "when_ready": when_ready,
    }
    try:
        DemoServer(app, options).run()
    except SystemExit as exc:
        # Gunicorn's arbiter leaves through sys.exit, even on a clean stop.
        return exc.code if isinstance(exc.code, int) else int(exc.code is not None)
    return 0
