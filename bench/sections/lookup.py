"""Constraint lookup cost with 10 and with 10,000 path specs.

``ConstraintMappings.find`` is timed directly, so the handler's per-path
cache is bypassed and the structure itself is measured. The 10,000-spec set
holds the 10-spec set plus 9,990 generated specs in the mix a large service
would have (mostly exact and prefix specs at several depths, 100 suffixes,
9 more templates), so the same paths find the same specs in both sets. The
cost of the loop around each call is measured in the same rounds and
subtracted. The last two rows time the handler's cached lookup for
completeness.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace

from harness import Loop, Row, Settings, measure, micros, net, ratio

from securityhandler import (
    Constraint,
    ConstraintMapping,
    ConstraintMappings,
    ConstraintSecurityHandler,
)

TITLE = "constraint lookup: 10,000 specs vs 10 specs"

#: The target from the core issue: lookup with 10,000 specs within 2x of 10.
MAX_RATIO = 2.0

BASE_SPECS = (
    "/healthz",
    "/api/v1/status",
    "/api/*",
    "/admin/*",
    "/static/*",
    "/api/v1/orders/*",
    "*.css",
    "*.tar.gz",
    "/users/{id}/profile",
    "/",
)

#: Paths by the kind of spec that wins in both sets.
PATHS = {
    "exact": ("/healthz", "/api/v1/status"),
    "prefix": ("/api/v1/orders/42/items", "/admin/users/7", "/static/js/app.js"),
    "suffix": ("/assets/site.css", "/downloads/pkg-1.0.tar.gz"),
    "template": ("/users/42/profile",),
    "default": ("/about/team", "/blog/2024/05/hello-world"),
}
#: Paths that reach generated specs in the large set (default in the small).
GENERATED_PATHS = ("/svc1234/api/v1/orders/9", "/svc77/health", "/svc5/items/3")

_SERVICE_SPECS = (
    "/svc{i}/health",
    "/svc{i}/v1/status",
    "/svc{i}/*",
    "/svc{i}/api/*",
    "/svc{i}/api/v1/*",
    "/svc{i}/api/v1/admin/*",
)


def generated_specs(count: int, templates: int = 9) -> list[str]:
    """Return ``count`` specs: templates, 100 suffixes, the rest per service."""
    specs = [f"/svc{i}/items/{{id}}" for i in range(templates)]
    specs += [f"*.x{i}" for i in range(100)]
    service = 0
    while len(specs) < count:
        specs += [form.format(i=service) for form in _SERVICE_SPECS]
        service += 1
    return specs[:count]


def build(specs: Sequence[str]) -> ConstraintMappings:
    """Compile one mapping per spec, constraints cycling through the kinds."""
    kinds = (
        Constraint.allowed(),
        Constraint.any_user(),
        Constraint.with_roles("admin"),
        Constraint.forbidden(),
    )
    return ConstraintMappings(
        ConstraintMapping((spec,), kinds[index % len(kinds)])
        for index, spec in enumerate(specs)
    )


def _lookup_loop(find: Callable[[str], object], paths: Sequence[str]) -> Loop:
    """Return a loop whose ``n`` iterations are ``n`` passes over ``paths``."""

    def loop(n: int) -> None:
        for _ in range(n):
            for path in paths:
                find(path)

    return loop


def _noop(path: str) -> None:
    """Stand in for a lookup: the loop and call cost to subtract."""


def run(settings: Settings) -> list[Row]:
    """Measure lookups per kind of winning spec, and the handler's cache."""
    small = build(BASE_SPECS)
    generated = 10_000 - len(BASE_SPECS)
    large = build([*BASE_SPECS, *generated_specs(generated)])
    # The same size with no template beyond the base set's one: isolates the
    # templates' share, the one part of the lookup that scans a list.
    flat = build([*BASE_SPECS, *generated_specs(generated, templates=0)])
    mix = (*(path for paths in PATHS.values() for path in paths), *GENERATED_PATHS)
    groups = {**PATHS, "mix": mix}

    loops: dict[str, Loop] = {}
    lookups: dict[str, int] = {}
    for kind, paths in groups.items():
        for size, find in (("noop", _noop), ("10", small.find), ("10000", large.find)):
            loops[f"{kind}/{size}"] = _lookup_loop(find, paths)
            lookups[f"{kind}/{size}"] = len(paths)
    loops["flat/10000"] = _lookup_loop(flat.find, mix)
    lookups["flat/10000"] = len(mix)
    for size, mappings in (("10", small), ("10000", large)):
        handler = ConstraintSecurityHandler(_no_app, mappings)
        loops[f"cached/{size}"] = _lookup_loop(handler.find_entry, mix)
        lookups[f"cached/{size}"] = len(mix)
    samples = measure(loops, settings)
    per_lookup = {
        name: [ns / lookups[name] for ns in values] for name, values in samples.items()
    }

    rows = [
        _ratio_row(f"find, {kind} paths", per_lookup, f"{kind}/10000", kind)
        for kind in groups
    ]
    rows[-1] = replace(
        rows[-1],
        note=f"mix: the {len(mix) - len(GENERATED_PATHS)} paths above and "
        f"{len(GENERATED_PATHS)} reaching generated specs; loop cost subtracted",
    )
    flat_row = _ratio_row(
        "find, mix, 10k specs with 1 template", per_lookup, "flat/10000", "mix"
    )
    cached = _ratio_row(
        "handler.find_entry (cached), mix",
        per_lookup,
        "cached/10000",
        "mix",
        small="cached/10",
    )
    rows += [replace(row, target="", passed=None) for row in (flat_row, cached)]
    return rows


def _ratio_row(
    figure: str,
    samples: dict[str, list[float]],
    large: str,
    kind: str,
    small: str | None = None,
) -> Row:
    """Compare ``large`` with the 10-spec loop of ``kind``, net of its loop."""
    baseline = samples[f"{kind}/noop"]
    value = micros(net(samples[large], baseline))
    peer = micros(net(samples[small or f"{kind}/10"], baseline))
    return Row(
        figure,
        value,
        "10 specs",
        peer,
        ratio(value, peer),
        target=f"10k/10 <= {MAX_RATIO:g}x",
        passed=ratio(value, peer) <= MAX_RATIO,
    )


def _no_app(environ: object, start_response: object) -> list[bytes]:
    return []
