"""Jetty realm files and inline users: :class:`HashLoginService`."""

from __future__ import annotations


class HashLoginService:
    """Placeholder until the realm module lands."""
