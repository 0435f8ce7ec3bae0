"""Canonicalise the raw request target, the way Jetty's strict URI compliance does.

``PATH_INFO`` has already been percent-decoded by the server, so ``%2F`` and
``/`` look alike there. The raw target (gunicorn's ``RAW_URI``, werkzeug's
``REQUEST_URI``) still tells them apart, so it is the input here. Anything a
server, a proxy and an application could read two ways is refused: the
handler must match the very path the application routes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple
from urllib.parse import quote

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIEnvironment

_HEX = frozenset("0123456789abcdefABCDEF")


class AmbiguousTargetError(ValueError):
    """The request target can be read more than one way: answer 400.

    :param reason: a short machine code for the audit record.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Target(NamedTuple):
    """A canonical request target.

    :param path: the canonical path within the application (what
        ``PATH_INFO`` now holds, decoded as text).
    :param raw_path: the raw path as sent, before the query.
    :param query: the raw query string, without ``?``.
    """

    path: str
    raw_path: str
    query: str


def canonical_target(environ: WSGIEnvironment) -> Target:
    """Canonicalise the request target and set ``PATH_INFO`` to match it.

    :raises AmbiguousTargetError: for any target DESIGN section 2 refuses.
    """
    script_name_raw = server_script_name(environ)
    raw = environ.get("RAW_URI") or environ.get("REQUEST_URI")
    if raw:
        raw_path, sep, query = raw.partition("?")
        if raw_path[:1] != "/":
            raw_path = _strip_authority(raw_path)
        if not sep:
            # Some servers (werkzeug's test client) leave the query out.
            query = environ.get("QUERY_STRING", "")
    else:
        # No raw target from the server: rebuild one from the decoded parts.
        decoded = script_name_raw + environ.get("PATH_INFO", "")
        raw_path = quote(decoded.encode("latin-1"), safe="/")
        query = environ.get("QUERY_STRING", "")

    if _is_plain(raw_path):
        path = raw_path
        if script_name_raw:
            path = _strip_script_name(path, script_name_raw)
        if environ.get("PATH_INFO") != path:
            environ["PATH_INFO"] = path
        return Target(path, raw_path, query)

    path = canonical_path(raw_path)
    if script_name_raw:
        path = _strip_script_name(path, _to_text(script_name_raw))
    wsgi_path = path.encode("utf-8").decode("latin-1")
    if environ.get("PATH_INFO") != wsgi_path:
        environ["PATH_INFO"] = wsgi_path
    return Target(path, raw_path, query)


def _is_plain(raw_path: str) -> bool:
    """Tell whether a raw path is printable ASCII with nothing to decode or resolve.

    Written as substring tests because they are several times cheaper than a
    regular expression on the request path, which every request takes.
    """
    return (
        raw_path.isascii()
        and raw_path.isprintable()
        and " " not in raw_path
        and "%" not in raw_path
        and ";" not in raw_path
        and "\\" not in raw_path
        and "#" not in raw_path
        and "//" not in raw_path
        and "/." not in raw_path
    )


def _strip_script_name(full: str, script_name: str) -> str:
    """Return the path within the app; the target must stay inside it."""
    if full != script_name and not full.startswith(script_name + "/"):
        raise AmbiguousTargetError("outside_script_name")
    return full[len(script_name) :]


def server_script_name(environ: WSGIEnvironment) -> str:
    """Return ``SCRIPT_NAME`` as the server set it.

    ProxyFix replaces it with a trusted ``X-Forwarded-Prefix`` and keeps the
    original; the raw target is relative to the original.
    """
    original = environ.get("werkzeug.proxy_fix.orig")
    if original is not None:
        return original.get("SCRIPT_NAME") or ""
    return environ.get("SCRIPT_NAME") or ""


def _strip_authority(raw_path: str) -> str:
    scheme, sep, rest = raw_path.partition("://")
    if sep and scheme.lower() in ("http", "https"):
        slash = rest.find("/")
        return "/" if slash == -1 else rest[slash:]
    raise AmbiguousTargetError("not_origin_form")


def _to_text(value: str) -> str:
    """Turn a PEP 3333 latin-1 environ string into the text it encodes."""
    try:
        return value.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        raise AmbiguousTargetError("invalid_utf8") from None


def canonical_path(raw_path: str) -> str:
    """Decode and normalise a raw path, refusing every ambiguity.

    Refused: ``%2F``, ``%25``, ``%uXXXX``, ``%00`` and other control
    characters, ``\\``, encoded dot segments (``%2e``), path parameters on
    dot or empty segments, empty segments other than a trailing one, invalid
    UTF-8, and ``..`` above the root. Other ``;`` parameters are dropped and
    ``.``/``..`` resolved.

    :param raw_path: the path part of the raw target, starting with ``/``.
    :return: the decoded canonical path.
    :raises AmbiguousTargetError: naming the reason.
    """
    if not raw_path.startswith("/"):
        raise AmbiguousTargetError("not_origin_form")
    if "#" in raw_path:
        raise AmbiguousTargetError("fragment")
    raw_segments = raw_path[1:].split("/")
    last = len(raw_segments) - 1
    out: list[str] = []
    for index, raw_segment in enumerate(raw_segments):
        segment, has_params = _decode_segment(raw_segment)
        if segment == "":
            if has_params or index != last:
                raise AmbiguousTargetError("empty_segment")
            out.append("")
        elif segment == "." or segment == "..":
            if has_params:
                raise AmbiguousTargetError("dot_segment_parameter")
            if "%" in raw_segment:
                raise AmbiguousTargetError("encoded_dot_segment")
            if segment == "..":
                if not out or out == [""]:
                    raise AmbiguousTargetError("above_root")
                out.pop()
            if index == last:
                out.append("")
        else:
            out.append(segment)
    return "/" + "/".join(out)


def _decode_segment(raw_segment: str) -> tuple[str, bool]:
    """Strip path parameters and percent-decode one segment."""
    name, semicolon, _ = raw_segment.partition(";")
    if "%" not in name and name.isascii():
        _check_characters(name)
        return name, bool(semicolon)
    buffer = bytearray()
    i = 0
    while i < len(name):
        char = name[i]
        if char != "%":
            # Raw targets are latin-1 strings of the bytes on the wire.
            if ord(char) > 0xFF:
                raise AmbiguousTargetError("invalid_utf8")
            buffer.append(ord(char))
            i += 1
            continue
        hex_digits = name[i + 1 : i + 3]
        if hex_digits[:1] in ("u", "U"):
            raise AmbiguousTargetError("utf16_encoding")
        if len(hex_digits) != 2 or not set(hex_digits) <= _HEX:
            raise AmbiguousTargetError("bad_percent_encoding")
        byte = int(hex_digits, 16)
        if byte == 0x2F:
            raise AmbiguousTargetError("encoded_separator")
        if byte == 0x25:
            raise AmbiguousTargetError("encoded_percent")
        buffer.append(byte)
        i += 3
    try:
        text = buffer.decode("utf-8")
    except UnicodeDecodeError:
        raise AmbiguousTargetError("invalid_utf8") from None
    _check_characters(text)
    return text, bool(semicolon)


def _check_characters(text: str) -> None:
    for char in text:
        code = ord(char)
        if code < 0x20 or code == 0x7F:
            raise AmbiguousTargetError("control_character")
        if char == "\\":
            raise AmbiguousTargetError("backslash")
