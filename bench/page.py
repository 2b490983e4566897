"""The docs/benchmarks.md page: method, machine, tables and interpretation."""

from bench.cycles import median
from bench.report import (
    BREACH_HEADER,
    FANOUT_HEADER,
    GOAL_WATCHERS,
    PROFILE_HEADER,
    SIZE_HEADER,
    VARIANT_HEADER,
    Results,
    breach_rows,
    fanout_rows,
    profile_rows,
    size_rows,
    table,
    variant_rows,
    verdict,
)
from bench.stack import SCRAPE_INTERVAL, THRESHOLD

METHOD = [
    "One run of the benchmark starts two exporters on loopback, one gauge",
    '`bench_value{id="0".."4999"}` and one gauge `bench_fanout{series="0".."999"}`,',
    f"and Debian's Prometheus scraping both every {SCRAPE_INTERVAL}. Each watcher",
    'has a distinct query of the form `avg_over_time(bench_value{id="17"}[1m])`',
    f"and a threshold of {THRESHOLD}, which every value stays below, so a cycle",
    "is a steady-state cycle: nothing turns pending and nothing opens.",
    "",
    "For each size, Prometheus first evaluates the same expressions as one group",
    "of recording rules (`record: bench:value:avg_1m`). Its own",
    "`prometheus_rule_group_last_duration_seconds` for that group is read from",
    "its `/metrics` at each evaluation, the first evaluation is dropped, and",
    "the median is reported. One Prometheus serves every size and the rules",
    "are swapped with `POST /-/reload`, which keeps the scraped history, so",
    "each size's `[1m]` windows are full and no size pays for a start-up.",
    "The group is then unloaded and",
    "Bastion's `evaluate_watchers` runs its cycles, so the two never share the",
    "CPU. Recording rules were chosen over alerting rules because they compute",
    "and store every result, as Bastion must fetch every result to judge it;",
    "an alerting rule `expr > threshold` that is below threshold returns nothing",
    "and would be cheaper still.",
    "",
    "A cycle is one call of `evaluate_watchers` with a new slot: the claim",
    "(a conditional UPDATE that also returns the columns the evaluation",
    "reads), the batched queries over HTTP, judging, and the writes in one",
    "transaction. `cycle` is its `total_seconds` and `query` its",
    "`query_seconds` (all Prometheus requests of the cycle, including JSON",
    "decoding). The first cycle of each case is dropped as warm-up, and with",
    "so few cycles kept the p95 is close to the slowest of them. The",
    "database is the one in `BASTION_DATABASE_URL` (by default `bastion_bench`",
    "on the local PostgreSQL), created and migrated by the benchmark, with",
    "Django's DEBUG off so that query logging costs nothing.",
]

VARIANT_TEXT = [
    "The same watchers with other `EVALUATION_BATCH_SIZE` and",
    "`EVALUATION_CONCURRENCY` settings. The variants run round-robin, one",
    "cycle of each per round, so a change in the machine's load affects them",
    "alike. The first row is the default.",
]

FANOUT_TEXT = [
    "One watcher whose query returns 1 to 1,000 series",
    '(`bench_fanout{series=~"[0-9]{1,3}"}` and narrower), with `max_series`',
    "raised to the series count.",
]

BREACH_TEXT = [
    "Every tenth watcher's value is raised far above the threshold, and each",
    "cycle is timed once, from the first breach until the incidents fire",
    "(window 30 s, one slot every 15 s). Compare with the steady-state median",
    "at the same size: the difference is the cost of writing series states",
    "and opening incidents. The cycle that opens incidents also runs, after",
    "its commit and in its own process, what each new incident triggers: the",
    "dashboard's live message, the start of its mitigation attempt and the",
    "check for an immediate escalation. Each line is a single cycle, not a",
    "median.",
]


def render_markdown(results: Results) -> str:
    """Return the evaluation-cycle section of docs/benchmarks.md."""
    lines = [
        "## Evaluation cycle",
        "",
        *METHOD,
        "",
        "Command (the figures below come from one run of it):",
        "",
        f"    {results.command}",
        "",
        "`--quick` runs 100 and 1,000 watchers with fewer cycles, for a check",
        "that the benchmark works rather than for figures.",
        "",
        "### Machine",
        "",
        *table(["", ""], [[k, v] for k, v in _machine(results).items()]),
        "",
        "### Steady state",
        "",
        *table(SIZE_HEADER, size_rows(results)),
        "",
        verdict(results),
    ]
    sections = [
        (
            f"Batch size and concurrency at {results.variant_watchers:,} watchers",
            VARIANT_TEXT,
            VARIANT_HEADER,
            variant_rows(results),
        ),
        (
            "One watcher returning many series",
            FANOUT_TEXT,
            FANOUT_HEADER,
            fanout_rows(results),
        ),
        (
            f"Write path at {results.breach_watchers:,} watchers",
            BREACH_TEXT,
            BREACH_HEADER,
            breach_rows(results),
        ),
        (
            f"Where the time goes at {GOAL_WATCHERS:,} watchers",
            _profile_text(results),
            PROFILE_HEADER,
            profile_rows(results),
        ),
    ]
    for title, text, header, rows in sections:
        if rows:
            lines.extend(["", f"### {title}", "", *text, "", *table(header, rows)])
    lines.extend(["", "### Interpretation", ""])
    for paragraph in interpretation(results):
        lines.extend([paragraph, ""])
    return "\n".join(lines)


def _machine(results: Results) -> dict[str, str]:
    return {
        **results.facts,
        "load average (1 / 5 / 15 min) before": results.load_before,
        "load average after": results.load_after,
        "1 min load average, highest during the run": f"{results.load_peak:.2f}",
        "run time": f"{results.wall_seconds:.0f} s",
    }


def _profile_text(results: Results) -> list[str]:
    return [
        f"cProfile over {results.profile_cycles} cycles "
        f"of {GOAL_WATCHERS:,} watchers, batches of {results.profile_batch_size},",
        "with `EVALUATION_CONCURRENCY=1` because cProfile records only the",
        "thread that started it. Profiling slows Python code, so the profiled cycle is",
        "slower than the ones above: read the shares. A line that starts with",
        "… is part of the line above it; the last line adds up the SQL",
        "statements of every step.",
    ]


def interpretation(results: Results) -> list[str]:
    """Return paragraphs drawn from the figures of this run."""
    paragraphs = [verdict(results)]
    paragraphs.extend(_scaling(results))
    paragraphs.extend(_best_variant(results))
    paragraphs.extend(_single_request(results))
    paragraphs.extend(_fanout_cost(results))
    paragraphs.extend(_write_cost(results))
    paragraphs.extend(_profile_summary(results))
    paragraphs.append(
        "Bastion's client, Prometheus, PostgreSQL and the exporters share the "
        "machine's cores, and other work on the machine (see the load averages "
        "above) adds noise to single cycles; the medians over "
        f"{results.cycles_kept} cycles are the figures to compare."
    )
    return paragraphs


def _scaling(results: Results) -> list[str]:
    if len(results.sizes) < 2:
        return []
    sentences = []
    for size in results.sizes:
        cycle = median(size.times.total())
        query = median(size.times.query())
        sentences.append(
            f"At {size.watchers:,} watchers a cycle cost "
            f"{cycle * 1000 / size.watchers:.2f} ms per watcher, "
            f"{query / cycle:.0%} of it in queries, {size.ratio:.1f}x Prometheus."
        )
    return [" ".join(sentences)]


def _best_variant(results: Results) -> list[str]:
    if len(results.variants) < 2:
        return []
    default = results.variants[0]
    best = min(results.variants, key=lambda v: median(v.times.total()))
    if best is default:
        return [
            f"Of the settings tried at {results.variant_watchers:,} watchers, the "
            f"default (batches of {default.batch_size}, {default.concurrency} in "
            f"flight) gave the fastest median cycle, "
            f"{median(default.times.total()):.3f} s."
        ]
    return [
        f"Of the settings tried at {results.variant_watchers:,} watchers, batches "
        f"of {best.batch_size} with {best.concurrency} in flight gave the fastest "
        f"median cycle, {median(best.times.total()):.3f} s, against "
        f"{median(default.times.total()):.3f} s for the default of "
        f"{default.batch_size} with {default.concurrency} in flight."
    ]


def _single_request(results: Results) -> list[str]:
    watchers = results.variant_watchers
    whole = [v for v in results.variants if v.batch_size >= watchers]
    sequential = [
        v for v in results.variants if v.concurrency == 1 and v.batch_size < watchers
    ]
    if not whole or not sequential:
        return []
    one_request = median(whole[0].times.query())
    batches = median(sequential[0].times.query())
    growth = "grows faster than" if one_request > batches else "grows no faster than"
    return [
        f"All {watchers:,} expressions in one request took {one_request:.3f} s "
        f"of query time at the median, against {batches:.3f} s in batches of "
        f"{sequential[0].batch_size} sent one after the other. The time of one "
        f"request {growth} the number of expressions that it joins with `or`."
    ]


def _fanout_cost(results: Results) -> list[str]:
    if len(results.fanout) < 2:
        return []
    (fewest, low), (most, high) = results.fanout[0], results.fanout[-1]
    low_cycle, high_cycle = median(low.total()), median(high.total())
    sentence = (
        f"The cycle of one watcher returning {most:,} series took "
        f"{high_cycle:.3f} s at the median, against {low_cycle:.3f} s for "
        f"{fewest:,} series"
    )
    if high_cycle > low_cycle:
        per_series = (high_cycle - low_cycle) / (most - fewest)
        sentence += f", about {per_series * 1e6:.0f} µs per extra series."
    else:
        sentence += ", so the series count does not show above the noise."
    return [sentence]


def _write_cost(results: Results) -> list[str]:
    goal = next(
        (s for s in results.sizes if s.watchers == results.breach_watchers), None
    )
    if goal is None or not results.breach:
        return []
    steady = median(goal.times.total())
    slowest_label, slowest = max(results.breach, key=lambda b: b[1].total_seconds)
    return [
        f"With a tenth of {results.breach_watchers:,} watchers breaching, the "
        f"slowest cycle ({slowest_label}) took {slowest.total_seconds:.3f} s "
        f"against the steady-state median of {steady:.3f} s."
    ]


def _profile_summary(results: Results) -> list[str]:
    steps = [
        line
        for line in results.profile[1:]
        if not line.label.startswith((" ", "every"))
    ]
    if not steps:
        return []
    ranked = sorted(steps, key=lambda line: line.share, reverse=True)
    named = ", ".join(f"{line.label} {line.share:.0%}" for line in ranked)
    return [f"In the profiled cycle the top-level steps take: {named}."]
