"""Run the benchmarks and print every figure beside its peer.

Usage::

    python bench/run.py                  # every section, full length
    python bench/run.py --quick          # short rounds, for a smoke run
    python bench/run.py --only lookup    # one section (repeatable)
    python bench/run.py --list           # the section names

Benchmarks are not tests: nothing here fails a build. The exit code is 0
whatever the figures; each figure with a target prints PASS or MISS.

The securityhandler measured is the one in this checkout (the repository
root goes first on ``sys.path``), so a change is measured without a
reinstall; the header prints which file was imported.

Adding a section: write ``bench/sections/<name>.py`` with a ``TITLE`` string
and ``run(settings: harness.Settings) -> list[harness.Row]`` (time with
:func:`harness.measure` or :func:`harness.measure_once`, which interleave
the candidates and keep the gc out of the timed loops), then add a line to
:data:`SECTIONS`. A section that cannot run here (a missing tool) returns a
row with ``value=None`` and a note saying why; an exception in a section is
reported and the other sections still run.
"""

from __future__ import annotations

import argparse
import datetime
import importlib
import os
import platform
import sys
import time
import traceback
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Protocol

BENCH = Path(__file__).resolve().parent
sys.path[:0] = [str(BENCH.parent), str(BENCH)]

from harness import Row, Settings, format_table  # noqa: E402

#: Section name -> module, in the order they run.
SECTIONS: dict[str, str] = {
    "handler": "sections.handler",
    "lookup": "sections.lookup",
    "tokens": "sections.tokens",
    "wrk": "sections.wrk",
}


class Section(Protocol):
    """What a section module provides."""

    TITLE: str

    def run(self, settings: Settings) -> list[Row]:
        """Measure the section's figures."""
        ...


def cpu_model() -> str:
    """Return the CPU model name, as ``/proc/cpuinfo`` gives it if it can."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def describe() -> str:
    """Return the header: date, Python, CPU and the code under test."""
    versions = []
    for name in ("werkzeug", "joserfc", "cryptography", "flask"):
        try:
            versions.append(f"{name} {version(name)}")
        except PackageNotFoundError:
            versions.append(f"{name} absent")
    now = datetime.datetime.now(datetime.timezone.utc)
    return "\n".join(
        [
            "securityhandler benchmarks",
            f"date:    {now:%Y-%m-%d %H:%M} UTC",
            f"python:  {platform.python_implementation()} {sys.version.split()[0]}"
            f" ({sys.executable})",
            f"cpu:     {cpu_model()}, {os.cpu_count()} cores, {platform.system()}"
            f" {platform.release()}",
            f"code:    {_code()}",
            f"libs:    {', '.join(versions)}",
            f"load:    {_load()} (1, 5, 15 min; other work on the machine adds noise)",
        ]
    )


def _code() -> str:
    try:
        import securityhandler
    except Exception as exc:
        return f"securityhandler does not import: {exc!r}"
    where = Path(securityhandler.__file__).parent
    return f"securityhandler {securityhandler.__version__} from {where}"


def _load() -> str:
    try:
        return ", ".join(f"{value:.2f}" for value in os.getloadavg())
    except OSError:
        return "unknown"


def run_section(name: str, settings: Settings) -> tuple[str, list[Row]]:
    """Import and run one section; an exception becomes a row saying so."""
    try:
        module: Section = importlib.import_module(SECTIONS[name])
        return module.TITLE, module.run(settings)
    except Exception as exc:
        traceback.print_exc()
        return name, [Row(f"section {name}", None, note=f"failed: {exc!r}")]


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Read the command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="short run")
    parser.add_argument(
        "--only",
        action="append",
        choices=sorted(SECTIONS),
        metavar="SECTION",
        help=f"run only this section (repeatable): {', '.join(SECTIONS)}",
    )
    parser.add_argument("--list", action="store_true", help="list the sections")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the chosen sections and print one table per section."""
    args = parse_args(argv)
    if args.list:
        print("\n".join(SECTIONS))
        return 0
    settings = Settings.quick() if args.quick else Settings()
    names = args.only or list(SECTIONS)
    print(describe())
    print(
        f"method:  perf_counter_ns, gc off in timed loops, {settings.rounds} "
        f"interleaved rounds of >= {settings.round_ns / 1e6:g} ms after warm-up; "
        "median [min..max] of the rounds\n"
    )
    started = time.perf_counter()
    verdicts: list[str] = []
    for name in names:
        title, rows = run_section(name, settings)
        print(format_table(title, rows), end="\n\n", flush=True)
        verdicts.extend(row.verdict for row in rows if row.target)
    print(
        f"targets: {verdicts.count('PASS')} PASS, {verdicts.count('MISS')} MISS"
        f" ({time.perf_counter() - started:.0f} s)"
    )
    return 0


if __name__ == "__main__":
    main()
    sys.exit(0)
