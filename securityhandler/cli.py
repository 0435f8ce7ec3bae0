"""The ``securityhandler`` command.

Each subcommand is a function ``<name>_command(args) -> int`` and an
``_add_<name>`` block that declares its arguments and binds the function.
Exit codes: 0 ok, 1 denied or findings, 2 usage or config error.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence

from . import __version__

EXIT_USAGE = 2

Command = Callable[[argparse.Namespace], int]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line and return the exit code.

    :param argv: the arguments after the program name; default ``sys.argv[1:]``.
    """
    args = build_parser().parse_args(argv)
    command: Command = args.command
    return command(args)


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser with every subcommand."""
    parser = argparse.ArgumentParser(
        prog="securityhandler",
        description="Jetty's security model as WSGI middleware.",
    )
    parser.add_argument(
        "--version", action="version", version=f"%(prog)s {__version__}"
    )
    commands = parser.add_subparsers(title="commands", metavar="COMMAND", required=True)
    _add_demo(commands)
    return parser


# -- demo ---------------------------------------------------------------------


def _add_demo(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "demo",
        help="serve the Flask example under gunicorn with demo users",
        description=(
            "Serve the Flask example, protected by its security.yaml, under "
            "gunicorn (gthread workers) on 127.0.0.1, and print curl lines to try."
        ),
    )
    parser.add_argument(
        "--port",
        type=_port,
        default=0,
        help="the port to listen on (default: a free one)",
    )
    parser.set_defaults(command=demo_command)


def demo_command(args: argparse.Namespace) -> int:
    """Serve the demo in the foreground until SIGTERM or Ctrl-C."""
    try:
        from ._demo.app import app
    except ModuleNotFoundError as exc:
        if exc.name != "flask":
            raise
        print(
            "The demo needs Flask: pip install 'securityhandler[flask]'",
            file=sys.stderr,
        )
        return EXIT_USAGE
    from ._demo import banner
    from ._demo.server import serve

    _log_to_stderr()

    def on_ready(port: int) -> None:
        print(banner(f"http://127.0.0.1:{port}"), flush=True)

    return serve(app, args.port, on_ready)


def _log_to_stderr() -> None:
    """Show the audit records: the library installs no handler itself."""
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("[%(name)s] %(levelname)s %(message)s"))
    logger = logging.getLogger("securityhandler")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"Expected a port number, got {text!r}"
        ) from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"Expected a port from 0 to 65535, got {port}")
    return port


if __name__ == "__main__":
    sys.exit(main())
