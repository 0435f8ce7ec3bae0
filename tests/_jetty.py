"""Jetty's credential obfuscation, rewritten for the tests from its algorithm."""

from __future__ import annotations


def obfuscate(password: str) -> str:
    """Jetty's ``Password.obfuscate``, rewritten for the tests."""
    data = password.encode("utf-8")
    groups = []
    for i, b1 in enumerate(data):
        b2 = data[-1 - i]
        if b1 > 127 or b2 > 127:
            groups.append("U" + _base36(b1 * 256 + b2).rjust(4, "0"))
        else:
            value = (127 + b1 + b2) * 256 + (127 + b1 - b2)
            groups.append(_base36(value).rjust(4, "0"))
    return "OBF:" + "".join(groups)


def _base36(value: int) -> str:
    digits = ""
    while value:
        value, digit = divmod(value, 36)
        digits = "0123456789abcdefghijklmnopqrstuvwxyz"[digit] + digits
    return digits or "0"
