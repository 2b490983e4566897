"""The benchmark's steps, in the order they run.

Steady-state cases come first, while every value is below the threshold. The
write-path case runs last because it leaves incidents open.
"""

import time

from django.db import connection

from bench.cycles import (
    CycleRunner,
    CycleTimes,
    breaching_indexes,
    count_open_incidents,
    create_watchers,
)
from bench.environment import LoadMonitor, load_average, machine_facts
from bench.plan import Plan
from bench.profiling import profile_cycles
from bench.report import GOAL_WATCHERS, Results, SizeResult, VariantResult
from bench.stack import THRESHOLD, BenchStack
from devstack.prometheus import find_prometheus
from watchers.models import Incident, SeriesState, Watcher

PROFILE_BATCH_SIZE = 100


def measure_all(plan: Plan, stack: BenchStack, command: str) -> Results:
    """Start the stack, run every case of ``plan`` and return the figures."""
    started = time.monotonic()
    results = Results(facts={}, command=command, load_before=load_average())
    monitor = LoadMonitor().start()
    _step(f"creating {max(plan.sizes):,} watchers and {len(plan.fanouts)} fan-out ones")
    ids = create_watchers(max(plan.sizes), list(plan.fanouts))
    _step("starting the exporters and Prometheus")
    runner = CycleRunner(stack.start().url)
    results.facts = machine_facts(find_prometheus())

    for size in plan.sizes:
        results.sizes.append(_measure_size(plan, stack, runner, ids["value"][:size]))
    _require_steady(ids["value"])
    goal_ids = ids["value"][:GOAL_WATCHERS]
    _measure_variants(plan, runner, goal_ids, results)
    _measure_profile(plan, runner, goal_ids, results)
    _measure_fanout(plan, runner, ids, results)
    _measure_breach(plan, stack, runner, ids["value"][: plan.breach_watchers], results)

    results.cycles_kept = plan.cycles - 1
    results.load_after = load_average()
    results.load_peak = monitor.stop()
    results.wall_seconds = time.monotonic() - started
    return results


def _step(message: str) -> None:
    print(message, flush=True)


def _vacuum() -> None:
    # Each cycle rewrites every evaluated watcher row twice (claim, then
    # results), which leaves dead rows. Vacuuming before each case means no
    # case pays for earlier cases' dead rows or gains from a lucky autovacuum.
    with connection.cursor() as cursor:
        for model in (Watcher, SeriesState, Incident):
            table = connection.ops.quote_name(model._meta.db_table)
            cursor.execute(f"VACUUM ANALYZE {table}")


def _measure_size(
    plan: Plan, stack: BenchStack, runner: CycleRunner, ids: list[int]
) -> SizeResult:
    size = len(ids)
    _step(f"{size:,} rules: timing Prometheus's rule group")
    timing = stack.time_rule_group(
        size, plan.rule_evaluations, plan.rule_interval_seconds(size)
    )
    _step(f"{size:,} watchers: {plan.cycles} cycles")
    _vacuum()
    times = runner.measure(ids, plan.cycles)
    return SizeResult(watchers=size, prometheus=timing, times=times)


def _require_steady(ids: list[int]) -> None:
    """Fail when a steady-state cycle judged a series as breaching."""
    states = SeriesState.objects.filter(watcher_id__in=ids).count()
    if states:
        raise RuntimeError(
            f"{states} bench series were pending or firing during the steady-state "
            f"cycles; their values must stay below the threshold of {THRESHOLD}"
        )


def _measure_variants(
    plan: Plan, runner: CycleRunner, ids: list[int], results: Results
) -> None:
    """Run the variants round-robin, so a change of load hits them all alike."""
    results.variant_watchers = len(ids)
    results.variants = [VariantResult(b, c, CycleTimes()) for b, c in plan.variants]
    _step(f"{len(ids):,} watchers: {len(plan.variants)} batching variants")
    for round_index in range(plan.cycles):
        _vacuum()
        for variant in results.variants:
            report = runner.cycle(ids, variant.batch_size, variant.concurrency)
            if round_index > 0:
                variant.times.reports.append(report)


def _measure_profile(
    plan: Plan, runner: CycleRunner, ids: list[int], results: Results
) -> None:
    _step(f"profiling {plan.profile_cycles} cycles of {len(ids):,} watchers")
    _vacuum()
    results.profile = profile_cycles(
        runner, ids, plan.profile_cycles, PROFILE_BATCH_SIZE
    )
    results.profile_batch_size = PROFILE_BATCH_SIZE
    results.profile_cycles = plan.profile_cycles


def _measure_fanout(
    plan: Plan, runner: CycleRunner, ids: dict[str, list[int]], results: Results
) -> None:
    for series in plan.fanouts:
        _step(f"one watcher returning {series:,} series")
        times = runner.measure(ids[f"fanout-{series}"], plan.cycles)
        results.fanout.append((series, times))


def _measure_breach(
    plan: Plan, stack: BenchStack, runner: CycleRunner, ids: list[int], results: Results
) -> None:
    """Let a share of the series breach and time each cycle until they fire."""
    indexes = breaching_indexes(len(ids), plan.breach_share)
    breaching = [ids[i] for i in indexes]
    _step(f"{len(breaching)} of {len(ids):,} watchers breaching")
    stack.set_breaching(indexes, True)
    stack.wait_for(f"count(avg_over_time(bench_value[1m]) > {THRESHOLD})", len(indexes))
    results.breach_watchers = len(ids)
    share = f"{plan.breach_share:.0%} breaching"
    _vacuum()

    report = runner.cycle(ids)
    results.breach.append((f"{share}, first cycle: series turn pending", report))
    # The window is two intervals, so the third breaching cycle opens the
    # incidents. The bound only stops a run whose incidents never open.
    while count_open_incidents(breaching) < len(breaching) and len(results.breach) < 5:
        report = runner.cycle(ids)
        opened = len(report.opened)
        label = f"{share}: {opened} incidents open" if opened else f"{share}: pending"
        results.breach.append((label, report))
    results.breach.append((f"{share}, incidents firing", runner.cycle(ids)))
    stack.set_breaching(indexes, False)
