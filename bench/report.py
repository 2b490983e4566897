"""The benchmark's figures as a text table and as the docs/benchmarks.md page."""

from dataclasses import dataclass, field

from bench.cycles import CycleTimes, median, p95
from bench.profiling import ProfileLine
from bench.stack import GroupTiming
from watchers.services.evaluation import CycleReport

GOAL_RATIO = 3.0
GOAL_WATCHERS = 1000


@dataclass
class SizeResult:
    watchers: int
    prometheus: GroupTiming
    times: CycleTimes

    @property
    def ratio(self) -> float:
        return median(self.times.total()) / self.prometheus.median


@dataclass
class VariantResult:
    batch_size: int
    concurrency: int
    times: CycleTimes


@dataclass
class Results:
    facts: dict[str, str]
    command: str
    load_before: str
    load_after: str = ""
    load_peak: float = 0.0
    wall_seconds: float = 0.0
    sizes: list[SizeResult] = field(default_factory=list)
    variants: list[VariantResult] = field(default_factory=list)
    variant_watchers: int = GOAL_WATCHERS
    fanout: list[tuple[int, CycleTimes]] = field(default_factory=list)
    breach: list[tuple[str, CycleReport]] = field(default_factory=list)
    breach_watchers: int = 0
    profile: list[ProfileLine] = field(default_factory=list)
    profile_batch_size: int = 0
    profile_cycles: int = 0
    cycles_kept: int = 0

    def goal_size(self) -> SizeResult | None:
        return next((s for s in self.sizes if s.watchers == GOAL_WATCHERS), None)


def _seconds(value: float) -> str:
    return f"{value:.3f} s"


def table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines.extend("| " + " | ".join(row) + " |" for row in rows)
    return lines


def size_rows(results: Results) -> list[list[str]]:
    rows = []
    for size in results.sizes:
        total, query = size.times.total(), size.times.query()
        rows.append(
            [
                f"{size.watchers:,}",
                str(size.times.requests()),
                _seconds(median(total)),
                _seconds(p95(total)),
                _seconds(median(query)),
                _seconds(p95(query)),
                _seconds(size.prometheus.median),
                f"{size.ratio:.1f}x",
            ]
        )
    return rows


SIZE_HEADER = [
    "watchers",
    "HTTP requests",
    "cycle median",
    "cycle p95",
    "query median",
    "query p95",
    "Prometheus rule group median",
    "cycle / Prometheus",
]


def variant_rows(results: Results) -> list[list[str]]:
    rows = []
    for variant in results.variants:
        total, query = variant.times.total(), variant.times.query()
        rows.append(
            [
                str(variant.batch_size),
                str(variant.concurrency),
                str(variant.times.requests()),
                _seconds(median(total)),
                _seconds(p95(total)),
                _seconds(median(query)),
                _seconds(median(total) - median(query)),
            ]
        )
    return rows


VARIANT_HEADER = [
    "batch size",
    "concurrency",
    "HTTP requests",
    "cycle median",
    "cycle p95",
    "query median",
    "cycle minus query (medians)",
]


def fanout_rows(results: Results) -> list[list[str]]:
    return [
        [
            f"{series:,}",
            _seconds(median(times.total())),
            _seconds(p95(times.total())),
            _seconds(median(times.query())),
        ]
        for series, times in results.fanout
    ]


FANOUT_HEADER = ["series returned", "cycle median", "cycle p95", "query median"]


def breach_rows(results: Results) -> list[list[str]]:
    return [
        [
            label,
            _seconds(report.total_seconds),
            _seconds(report.query_seconds),
            _seconds(report.total_seconds - report.query_seconds),
            str(len(report.opened)),
        ]
        for label, report in results.breach
    ]


BREACH_HEADER = [
    "cycle",
    "cycle time",
    "query time",
    "cycle minus query",
    "incidents opened",
]


def profile_rows(results: Results) -> list[list[str]]:
    return [
        [
            line.label.replace("  ", "… ", 1),
            _seconds(line.seconds_per_cycle),
            f"{line.share:.0%}",
        ]
        for line in results.profile
    ]


PROFILE_HEADER = ["step", "seconds per cycle (profiled)", "share of the cycle"]


def render_text(results: Results) -> str:
    """Return the tables as plain text for the terminal."""
    sections = [
        ("Steady-state cycles", SIZE_HEADER, size_rows(results)),
        (
            f"Batch size and concurrency, {results.variant_watchers:,} watchers",
            VARIANT_HEADER,
            variant_rows(results),
        ),
        ("One watcher returning many series", FANOUT_HEADER, fanout_rows(results)),
        (
            f"Write path, {results.breach_watchers:,} watchers",
            BREACH_HEADER,
            breach_rows(results),
        ),
        ("Profile", PROFILE_HEADER, profile_rows(results)),
    ]
    lines = []
    for title, header, rows in sections:
        if rows:
            lines.extend(["", title, *_aligned([header, *rows])])
    lines.append("")
    lines.append(verdict(results))
    return "\n".join(lines)


def _aligned(rows: list[list[str]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True))
        for row in rows
    ]


def verdict(results: Results) -> str:
    """State the cycle-to-Prometheus ratio at the goal size against the goal."""
    goal = results.goal_size()
    if goal is None:
        return f"No run at {GOAL_WATCHERS:,} watchers, so the goal was not checked."
    outcome = "meets" if goal.ratio <= GOAL_RATIO else "misses"
    return (
        f"At {GOAL_WATCHERS:,} watchers the median cycle took "
        f"{median(goal.times.total()):.3f} s, {goal.ratio:.1f}x Prometheus's own "
        f"{goal.prometheus.median:.3f} s for the same rules: this {outcome} the "
        f"goal of {GOAL_RATIO:g}x."
    )
