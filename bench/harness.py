"""Timing and reporting for the benchmark sections.

Every figure is measured the same way: each candidate is a *loop*, a callable
that runs the code under test ``n`` times; the candidates of one comparison
are timed in interleaved rounds (so drift hits all of them alike), with the
garbage collector off, after a warm-up, and summarised by the median round,
with the fastest and slowest rounds beside it.
"""

from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

#: A loop runs the code under test ``n`` times; its return value is ignored.
Loop = Callable[[int], object]


@dataclass(frozen=True)
class Settings:
    """How long to measure.

    Many short rounds rather than a few long ones: on a shared machine a
    burst of other work spoils a few rounds, which the median then ignores,
    where it would spread over every long round.

    :param rounds: timed rounds per candidate; the median round is reported.
    :param round_ns: how long one round should take, in nanoseconds.
    :param samples: repetitions of a one-shot measurement (a first request).
    """

    rounds: int = 101
    round_ns: int = 2_000_000
    samples: int = 5

    @classmethod
    def quick(cls) -> Settings:
        """Return settings for a short run: fewer and shorter rounds."""
        return cls(rounds=21, round_ns=1_000_000, samples=2)


@dataclass(frozen=True)
class Stats:
    """The median, fastest and slowest of a set of samples.

    :param unit: how the numbers read (``µs``, ``ms``, ``req/s``).
    """

    median: float
    low: float
    high: float
    unit: str = "µs"

    @classmethod
    def of(cls, samples: Sequence[float], unit: str = "µs") -> Stats:
        """Summarise ``samples``, which must not be empty."""
        return cls(statistics.median(samples), min(samples), max(samples), unit)

    def scaled(self, factor: float, unit: str) -> Stats:
        """Return the same figures multiplied by ``factor``, in ``unit``."""
        return Stats(self.median * factor, self.low * factor, self.high * factor, unit)

    def __str__(self) -> str:
        median, low, high = (_number(v) for v in (self.median, self.low, self.high))
        return f"{median} {self.unit} [{low}..{high}]"


@dataclass(frozen=True)
class Row:
    """One line of the report: a figure, its peer, the ratio and the verdict.

    :param figure: what was measured.
    :param value: the figure itself.
    :param peer_name: what it is compared with.
    :param peer: the peer's figure, measured in the same run.
    :param ratio: ``value / peer`` (medians).
    :param delta: ``value - peer`` per round, when the difference is the
        point (an overhead).
    :param target: the target in words, empty when there is none.
    :param passed: ``True``/``False`` against the target, ``None`` if none.
    :param note: a short remark printed under the row.
    """

    figure: str
    value: Stats | None
    peer_name: str = ""
    peer: Stats | None = None
    ratio: float | None = None
    delta: Stats | None = None
    target: str = ""
    passed: bool | None = None
    note: str = ""

    @property
    def verdict(self) -> str:
        """Return ``PASS``, ``MISS`` or ``-`` (no target)."""
        if self.passed is None:
            return "-"
        return "PASS" if self.passed else "MISS"


def ratio(value: Stats, peer: Stats) -> float:
    """Return the ratio of two medians."""
    return value.median / peer.median if peer.median else float("inf")


def _time_loop(loop: Loop, number: int) -> int:
    start = time.perf_counter_ns()
    loop(number)
    return time.perf_counter_ns() - start


def calibrate(loop: Loop, settings: Settings) -> int:
    """Return how many iterations make one round last ``settings.round_ns``.

    The loop runs once untimed first, so a slow first call (imports, lazy
    set-up) does not shrink the rounds; the calibration runs double as the
    warm-up.
    """
    loop(1)
    number = 1
    while True:
        elapsed = _time_loop(loop, number)
        if elapsed >= settings.round_ns // 4 or number >= 1 << 24:
            break
        number *= 2
    per_call = elapsed / number
    return max(1, int(settings.round_ns / max(per_call, 1.0)))


def measure(loops: Mapping[str, Loop], settings: Settings) -> dict[str, list[float]]:
    """Time each loop in interleaved rounds; return ns per iteration, per round.

    The garbage collector is off throughout and runs explicitly between
    rounds, so no collection lands inside one loop rather than another.
    """
    numbers = {name: calibrate(loop, settings) for name, loop in loops.items()}
    for name, loop in loops.items():
        loop(numbers[name])
    names = list(loops)
    samples: dict[str, list[float]] = {name: [] for name in names}
    enabled = gc.isenabled()
    gc.disable()
    try:
        for index in range(settings.rounds):
            gc.collect()
            # Rotate the order: the first loop after a collection runs on cold
            # caches, and that must not always be the same one.
            shift = index % len(names)
            for name in names[shift:] + names[:shift]:
                elapsed = _time_loop(loops[name], numbers[name])
                samples[name].append(elapsed / numbers[name])
    finally:
        if enabled:
            gc.enable()
    return samples


def measure_once(
    actions: Mapping[str, Callable[[], Callable[[], object]]], settings: Settings
) -> dict[str, list[float]]:
    """Time one-shot actions, ``settings.samples`` times each, interleaved.

    Each action is a factory: it prepares a fresh subject (untimed) and
    returns the single call to time. Returns ns per call, per sample.
    """
    samples: dict[str, list[float]] = {name: [] for name in actions}
    enabled = gc.isenabled()
    gc.disable()
    try:
        for _ in range(settings.samples):
            for name, prepare in actions.items():
                call = prepare()
                gc.collect()
                start = time.perf_counter_ns()
                call()
                samples[name].append(float(time.perf_counter_ns() - start))
    finally:
        if enabled:
            gc.enable()
    return samples


def net(samples: Sequence[float], baseline: Sequence[float]) -> list[float]:
    """Subtract the baseline round by round (the rounds were interleaved)."""
    return [value - base for value, base in zip(samples, baseline, strict=True)]


def micros(samples: Sequence[float]) -> Stats:
    """Summarise nanosecond samples in microseconds."""
    return Stats.of(samples).scaled(1e-3, "µs")


def millis(samples: Sequence[float]) -> Stats:
    """Summarise nanosecond samples in milliseconds."""
    return Stats.of(samples).scaled(1e-6, "ms")


def _number(value: float) -> str:
    magnitude = abs(value)
    if magnitude >= 1000:
        return f"{value:,.0f}"
    if magnitude >= 100:
        return f"{value:.1f}"
    if magnitude >= 10:
        return f"{value:.2f}"
    return f"{value:.3f}"


def format_table(title: str, rows: Sequence[Row]) -> str:
    """Render one section's rows as a fixed-width table."""
    header = ("figure", "value [min..max]", "peer", "ratio", "delta", "target", "")
    cells = [header]
    for row in rows:
        cells.append(
            (
                row.figure,
                "n/a" if row.value is None else str(row.value),
                _peer_cell(row),
                "" if row.ratio is None else f"{row.ratio:.2f}x",
                ""
                if row.delta is None
                else f"{_number(row.delta.median)} {row.delta.unit}",
                row.target,
                row.verdict if row.target else "",
            )
        )
    widths = [max(len(line[i]) for line in cells) for i in range(len(header))]
    lines = [f"== {title} =="]
    for index, line in enumerate(cells):
        lines.append(
            "  ".join(
                cell.ljust(width) for cell, width in zip(line, widths, strict=True)
            ).rstrip()
        )
        if index == 0:
            lines.append("  ".join("-" * width for width in widths).rstrip())
        elif rows[index - 1].note:
            lines.append(f"    ({rows[index - 1].note})")
    return "\n".join(lines)


def _peer_cell(row: Row) -> str:
    if not row.peer_name:
        return ""
    if row.peer is None:
        return row.peer_name
    return f"{row.peer_name}: {_number(row.peer.median)} {row.peer.unit}"
