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
    _add_check(commands)
    _add_explain(commands)
    _add_table(commands)
    _add_token(commands)
    _add_hash_password(commands)
    _add_demo(commands)
    return parser


# -- demo ---------------------------------------------------------------------


def _add_demo(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "demo",
        help="serve the Flask example with a local token issuer and demo users",
        description=(
            "Serve the Flask example under gunicorn (gthread workers) over "
            "HTTPS on 127.0.0.1, with a self-signed certificate made at start. "
            "Its security.yaml gains a local token issuer, served by the demo "
            "itself on loopback, and a bearer authenticator next to Basic. "
            "Print freshly minted tokens and, for each case (200, 401, 403), "
            "a curl line and the 'securityhandler explain' line that tells "
            "why. Everything made at start is removed on exit."
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
        # Loaded before logging is set up, so that the start-up summary of
        # its own handler (from the packaged security.yaml, which the demo
        # replaces) is not shown.
        from ._demo import app  # noqa: F401
    except ModuleNotFoundError as exc:
        if exc.name != "flask":
            raise
        print(
            "The demo needs Flask: pip install 'securityhandler[flask]'",
            file=sys.stderr,
        )
        return EXIT_USAGE
    from ._demo import Setup, banner
    from ._demo.issuer import local_issuer, mint_tokens, write_config
    from ._demo.server import demo_app, serve
    from ._demo.tls import temporary_certificate

    _log_to_stderr()
    # The example demands HTTPS wherever a credential is sent: serve TLS
    # with a certificate made now. The effective configuration is written
    # next to it, the issuer runs in this process: all end with the demo.
    with temporary_certificate() as certificate, local_issuer() as issuer:
        config = write_config(certificate.directory, issuer)
        tokens = mint_tokens(issuer)

        def on_ready(port: int) -> None:
            setup = Setup(
                base_url=f"https://127.0.0.1:{port}",
                cacert=certificate.cert,
                config=config,
                issuer=issuer.issuer,
                audience=issuer.audience,
                tokens=tokens,
            )
            print(banner(setup), flush=True)

        return serve(demo_app(config), args.port, certificate, on_ready)


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


# -- check --------------------------------------------------------------------


def _add_check(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "check",
        help="validate and lint a configuration",
        description=(
            "Load CONFIG and report what is risky or probably unintended: "
            "uncovered methods, rules a more specific spec does not repeat, "
            "roles nobody holds, plain passwords, credentials over plain HTTP, "
            "trusted forwarded headers, report-only mode. Each finding has a "
            "code, file:line and a one-line fix. Exit 0: no warnings (notes "
            "may be shown); 1: warnings; 2: the configuration does not load."
        ),
    )
    parser.add_argument("config", metavar="CONFIG", help="the YAML configuration")
    _add_format(parser, ("text", "json"))
    parser.set_defaults(command=check_command)


def check_command(args: argparse.Namespace) -> int:
    """Lint the configuration; exit 1 on warnings, 2 if it does not load."""
    from ._lint import run_check

    return run_check(args.config, as_json=args.format == "json")


def _add_format(parser: argparse.ArgumentParser, choices: Sequence[str]) -> None:
    parser.add_argument(
        "--format",
        choices=choices,
        default=choices[0],
        help=f"output format (default: {choices[0]})",
    )


# -- explain ------------------------------------------------------------------


def _add_explain(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "explain",
        help="tell why a request is allowed or denied",
        description=(
            "Send one request through the handler CONFIG builds and print the "
            "decision and every step: canonical path, the spec that matched and "
            "the ones it beat, the method's constraints, transport, the "
            "authenticator that answered (for a token: issuer, kid, the claims "
            "behind each role) and, for a denial, the reason in words. "
            "Exit 0: allowed; 1: denied; 2: usage or configuration error."
        ),
        epilog=(
            "PATH is the raw request target ('/api/orders?x=1'), or a URL "
            "whose scheme and host are used. Tokens, passwords and headers "
            "are never printed."
        ),
    )
    parser.add_argument("config", metavar="CONFIG", help="the YAML configuration")
    parser.add_argument("method", metavar="METHOD", help="the HTTP method, e.g. GET")
    parser.add_argument("target", metavar="PATH", help="the request target or URL")
    who = parser.add_mutually_exclusive_group()
    who.add_argument("--token", metavar="T", help="send 'Authorization: Bearer T'")
    who.add_argument(
        "--user",
        metavar="U",
        help="with --roles: skip authentication; with --password-stdin: send "
        "Basic credentials",
    )
    parser.add_argument(
        "--header",
        metavar="'NAME: VALUE'",
        action="append",
        default=[],
        help="add a request header (repeatable)",
    )
    how = parser.add_mutually_exclusive_group()
    how.add_argument(
        "--roles", metavar="A,B", help="the roles of --user (no authentication)"
    )
    how.add_argument(
        "--password-stdin",
        action="store_true",
        help="read the password of --user from stdin's first line",
    )
    parser.add_argument(
        "--https", action="store_true", help="the request arrives over HTTPS"
    )
    parser.add_argument(
        "--no-verify",
        action="store_true",
        help="check token claims but NOT the signature (keys unreachable)",
    )
    _add_format(parser, ("text", "json"))
    parser.set_defaults(command=explain_command)


def explain_command(args: argparse.Namespace) -> int:
    """Explain the decision on one request; exit 1 if it is denied."""
    from ._explain import query_from_arguments, run_explain

    try:
        query = query_from_arguments(
            method=args.method,
            target=args.target,
            headers=args.header,
            token=args.token,
            user=args.user,
            roles=args.roles,
            password_stdin=args.password_stdin,
            https=args.https,
            verify=not args.no_verify,
        )
    except ValueError as exc:
        print(f"securityhandler explain: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    return run_explain(args.config, query, as_json=args.format == "json")


# -- table --------------------------------------------------------------------


def _add_table(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "table",
        help="print the effective path spec x method matrix",
        description=(
            "Print, for each path spec (best precedence first) and each method, "
            "the combined demand: forbidden, allowed, any-user, known-role, "
            "roles a|b, or uncovered→403 / uncovered→open; '+https' marks "
            "secure transport. 'other' is every method no constraint of the "
            "spec names. Exit 2 if the configuration does not load."
        ),
    )
    parser.add_argument("config", metavar="CONFIG", help="the YAML configuration")
    _add_format(parser, ("text", "markdown", "json"))
    parser.set_defaults(command=table_command)


def table_command(args: argparse.Namespace) -> int:
    """Print the matrix of a configuration."""
    from ._table import run_table

    return run_table(args.config, args.format)


# -- token --------------------------------------------------------------------


def _add_token(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "token",
        help="mint a development token from a local key",
        description=(
            "Print a JWT signed with a local private key, for a service whose "
            "issuer trusts that key (development only). Without --key, a key "
            "kept in ~/.cache/securityhandler/ is used, created on first use. "
            "--jwks prints the public key set to serve as the issuer's jwks_uri."
        ),
    )
    parser.add_argument(
        "--key", metavar="FILE", help="a private key: JWK (JSON) or PEM"
    )
    parser.add_argument("--alg", help="the JWS algorithm (default: from the key)")
    parser.add_argument("--iss", help="the issuer, as the config's 'issuer' says")
    parser.add_argument(
        "--aud", action="append", default=[], help="an audience (repeatable)"
    )
    parser.add_argument("--sub", help="the subject (default: dev-user)")
    parser.add_argument("--roles", metavar="A,B", help="a 'roles' claim")
    parser.add_argument(
        "--ttl",
        type=_seconds,
        default=300,
        help="seconds until 'exp' (default: 300)",
    )
    parser.add_argument(
        "--claim",
        metavar="NAME=VALUE",
        action="append",
        default=[],
        help="another claim; VALUE is read as JSON if it parses (repeatable)",
    )
    parser.add_argument(
        "--jwks", action="store_true", help="print the public JWKS, not a token"
    )
    parser.set_defaults(command=token_command)


def token_command(args: argparse.Namespace) -> int:
    """Print a minted token, or the public JWKS of the key."""
    from ._dev import UsageError, run_token, token_claims

    if not args.jwks and (not args.iss or not args.aud):
        print(
            "securityhandler token: error: --iss and --aud are required",
            file=sys.stderr,
        )
        return EXIT_USAGE
    try:
        claims = token_claims(
            iss=args.iss,
            audiences=args.aud,
            sub=args.sub,
            roles=None if args.roles is None else _names(args.roles),
            extra=args.claim,
        )
    except UsageError as exc:
        print(f"securityhandler token: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    return run_token(
        key_file=args.key,
        algorithm=args.alg,
        claims=claims,
        ttl=args.ttl,
        jwks=args.jwks,
    )


def _seconds(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"Expected a number of seconds, got {text!r}"
        ) from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"Expected seconds > 0, got {value}")
    return value


def _names(text: str) -> list[str]:
    """Split ``a,b`` into names, dropping blanks."""
    return [name.strip() for name in text.split(",") if name.strip()]


# -- hash-password ------------------------------------------------------------


def _add_hash_password(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
) -> None:
    parser = commands.add_parser(
        "hash-password",
        help="hash a password for a realm file",
        description=(
            "Read a password from a prompt (typed twice) or from stdin's first "
            "line, never from the command line, and print its werkzeug scrypt "
            "hash. With USER, print the whole realm.properties line."
        ),
    )
    parser.add_argument("user", metavar="USER", nargs="?", help="the user name")
    parser.add_argument("--roles", metavar="A,B", help="the user's roles")
    parser.add_argument(
        "--stdin", action="store_true", help="read the password from stdin"
    )
    parser.set_defaults(command=hash_password_command)


def hash_password_command(args: argparse.Namespace) -> int:
    """Print the scrypt hash (or realm line) of a password read safely."""
    from ._dev import run_hash_password

    roles = [] if args.roles is None else _names(args.roles)
    if roles and args.user is None:
        print(
            "securityhandler hash-password: error: --roles needs USER",
            file=sys.stderr,
        )
        return EXIT_USAGE
    return run_hash_password(args.user, roles, from_stdin=args.stdin)


if __name__ == "__main__":
    sys.exit(main())
