"""``securityhandler table``: the effective path spec x method matrix.

Each cell is the combined demand of the constraints that apply to that spec
and method (:meth:`~securityhandler.constraints.SpecEntry.role_info`), in the
words of :func:`~securityhandler._lint.describe`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

from ._lint import (
    EXIT_OK,
    config_error,
    describe,
    emit,
    load,
    spec_kind,
    spec_line,
)
from .config import SecurityConfig
from .constraints import ConstraintMappings
from .errors import ConfigError
from .pathspec import PathSpecGroup

#: Methods every table shows, beside those the configuration names.
STANDARD_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE")
#: The column for every method no constraint of the spec names.
OTHER = "other"
#: The row for paths no spec matches, when there is no default spec.
NO_SPEC = "(no spec)"


@dataclass(frozen=True)
class Row:
    """One path spec and the demand for each method.

    :param spec: the spec text, or :data:`NO_SPEC`.
    :param kind: ``exact``, ``prefix`` ... or ``none``.
    :param line: the line of its first constraint, if known.
    :param cells: the words of each column, :data:`OTHER` last.
    """

    spec: str
    kind: str
    line: int | None
    cells: tuple[str, ...]


@dataclass(frozen=True)
class Table:
    """The matrix: its method columns and its rows, best precedence first."""

    methods: tuple[str, ...]
    rows: tuple[Row, ...]

    @property
    def columns(self) -> tuple[str, ...]:
        """Return the method columns and :data:`OTHER`."""
        return (*self.methods, OTHER)


def build_table(config: SecurityConfig) -> Table:
    """Return the effective matrix of a configuration."""
    mappings = ConstraintMappings(config.mappings)
    named = set().union(*(m.methods | m.omit_methods for m in config.mappings))
    extra = sorted(named.difference(STANDARD_METHODS))
    methods = (*STANDARD_METHODS, *extra)
    deny = config.deny_uncovered_methods
    rows = []
    for entry in mappings.entries():
        cells = [describe(entry.role_info(m), deny_uncovered=deny) for m in methods]
        cells.append(describe(entry.other, deny_uncovered=deny))
        line = spec_line(config, entry)
        rows.append(Row(entry.spec.spec, spec_kind(entry.spec), line, tuple(cells)))
    if not any(e.spec.group is PathSpecGroup.DEFAULT for e in mappings.entries()):
        # DESIGN 2: a path no spec matches is allowed.
        rows.append(Row(NO_SPEC, "none", None, ("allowed",) * (len(methods) + 1)))
    return Table(methods, tuple(rows))


def render_text(table: Table) -> str:
    """Return the matrix as aligned columns."""
    header = ("path spec", *table.columns)
    body = [(_shown(row.spec), *row.cells) for row in table.rows]
    widths = [max(len(line[i]) for line in (header, *body)) for i in range(len(header))]
    return "\n".join(
        "  ".join(
            cell.ljust(width) for cell, width in zip(line, widths, strict=True)
        ).rstrip()
        for line in (header, *body)
    )


def render_markdown(table: Table) -> str:
    """Return the matrix as a Markdown table."""
    header = ("path spec", *table.columns)
    lines = [_markdown_row(header), _markdown_row(["---"] * len(header))]
    lines.extend(
        _markdown_row((f"`{_shown(row.spec)}`", *row.cells)) for row in table.rows
    )
    return "\n".join(lines)


def render_json(table: Table) -> str:
    """Return the matrix as JSON: columns, and each row's cells by column."""
    rows = [
        {
            "spec": row.spec if row.spec != NO_SPEC else None,
            "kind": row.kind,
            "line": row.line,
            "cells": dict(zip(table.columns, row.cells, strict=True)),
        }
        for row in table.rows
    ]
    return json.dumps({"columns": list(table.columns), "rows": rows}, indent=2)


def _shown(spec: str) -> str:
    return '""' if spec == "" else spec


def _markdown_row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"


_RENDERERS = {"text": render_text, "markdown": render_markdown, "json": render_json}


def run_table(path: str, output: str) -> int:
    """Load ``path`` and print its matrix in ``output`` format; return the exit code."""
    try:
        loaded = load(path)
    except ConfigError as exc:
        return config_error(exc, as_json=output == "json")
    emit(_RENDERERS[output](build_table(loaded.config)))
    return EXIT_OK
