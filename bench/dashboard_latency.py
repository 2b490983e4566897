"""Latency from a committed change to its arrival at every open dashboard.

The benchmark starts daphne serving bastion.asgi on a free loopback port and
connects 50 websocket clients (aiohttp) signed in as a user who may view
incidents. A second process, started like a Celery worker, saves an incident
once per interval in its own transaction. Its post_save hook publishes the
row through channels_redis once the transaction commits, as in production.

For each change the writer stamps the moment its COMMIT returned, and each
client stamps the moment the message arrived. Both read CLOCK_MONOTONIC,
which all processes of one Linux machine share. A change is identified by
the value it wrote, so a missing arrival counts as dropped.

Run: ``make bench-dashboard`` (or ``python -m bench.dashboard_latency``).
"""

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from tempfile import mkdtemp

import aiohttp

from bench.environment import load_average, machine_facts, prepare_django
from bench.pages import write_section
from devstack.processes import ProcessGroup, free_port, port_is_open

REPOSITORY = Path(__file__).resolve().parents[1]
DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/bastion_bench_dashboard"
# A Redis database that no test, demo or other benchmark of this repository
# uses. The benchmark deletes only its own keys there, at start and end.
REDIS_URL = "redis://127.0.0.1:6379/3"
WARM_UP_CHANGES = 10
GRACE_SECONDS = 5.0
GOAL_SECONDS = 0.050
SECTION = "Dashboard updates"


@dataclass
class Client:
    """One websocket client and the arrival time of each change it received."""

    number: int
    arrivals: dict[int, float] = field(default_factory=dict)
    sequence_gaps: int = 0
    last_sequence: int | None = None

    def note(self, message: dict, arrived: float) -> None:
        sequence = message.get("seq")
        if self.last_sequence is not None and sequence != self.last_sequence + 1:
            self.sequence_gaps += 1
        self.last_sequence = sequence
        entry = message.get("incident") or {}
        change = entry.get("last_value")
        if message.get("type") == "incident" and change is not None:
            self.arrivals.setdefault(int(change), arrived)


def percentile(values: list[float], share: float) -> float:
    """Return the nearest-rank percentile: ``share`` of the values are at or below."""
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(share * len(ordered)) - 1))
    return ordered[index]


# The writer: a separate process, as a Celery worker would be.


def write_changes(incident_id: int, changes: int, interval: float, out: Path) -> None:
    """Save the incident ``changes`` times, then write the commit and send times."""
    from django.db import transaction

    from watchers.models import Incident

    incident = Incident.objects.get(pk=incident_id)
    committed: list[float] = []
    published: list[float] = []
    next_at = time.monotonic()
    for change in range(changes):
        next_at += interval
        with transaction.atomic():
            # Registered before save(), so it runs first among the commit hooks,
            # before the hook that renders and publishes the row.
            transaction.on_commit(lambda: committed.append(time.monotonic()))
            incident.last_value = float(change)
            incident.save(update_fields=["last_value"])
            # Registered after save(), so it runs once the row was sent.
            transaction.on_commit(lambda: published.append(time.monotonic()))
        time.sleep(max(0.0, next_at - time.monotonic()))
    stamps = {"committed": committed, "published": published}
    out.write_text(json.dumps(stamps), encoding="utf-8")


# The clients


async def listen(
    client: Client,
    session: aiohttp.ClientSession,
    url: str,
    headers: dict[str, str],
    connected: list[int],
    stop: asyncio.Event,
) -> None:
    """Receive the snapshot, then stamp every message until ``stop`` is set."""
    async with session.ws_connect(url, headers=headers, heartbeat=None) as socket:
        first = await socket.receive_json(timeout=30)
        if first.get("type") != "snapshot":
            raise RuntimeError(f"client {client.number}: expected a snapshot: {first}")
        client.last_sequence = first["seq"]
        connected.append(client.number)
        while not stop.is_set():
            try:
                message = await socket.receive(timeout=0.5)
            except TimeoutError:
                continue
            arrived = time.monotonic()
            if message.type != aiohttp.WSMsgType.TEXT:
                break
            client.note(json.loads(message.data), arrived)


async def run_clients(
    count: int, url: str, headers: dict[str, str], writer: list[str], env: dict
) -> list[Client]:
    clients = [Client(number) for number in range(count)]
    stop = asyncio.Event()
    connected: list[int] = []
    async with aiohttp.ClientSession() as session:
        tasks = [
            asyncio.create_task(listen(client, session, url, headers, connected, stop))
            for client in clients
        ]
        deadline = time.monotonic() + 60
        while len(connected) < count:
            for task in tasks:
                if task.done() and task.exception() is not None:
                    raise task.exception()  # type: ignore[misc]
            if time.monotonic() > deadline:
                raise TimeoutError(f"only {len(connected)} of {count} clients joined")
            await asyncio.sleep(0.05)

        process = await asyncio.create_subprocess_exec(*writer, env=env)
        if await process.wait() != 0:
            raise RuntimeError(f"the writer exited with status {process.returncode}")
        await asyncio.sleep(GRACE_SECONDS)
        stop.set()
        await asyncio.gather(*tasks)
    return clients


# Setting up


def start_daphne(database_url: str, port: int) -> ProcessGroup:
    group = ProcessGroup(Path(mkdtemp(prefix="bastion-bench-dashboard-")))
    group.start(
        "daphne",
        [
            sys.executable,
            "-m",
            "daphne",
            "-b",
            "127.0.0.1",
            "-p",
            str(port),
            "bastion.asgi:application",
        ],
        env=bench_env(database_url),
    )
    deadline = time.monotonic() + 30
    while not port_is_open(port):
        group.check_alive()
        if time.monotonic() > deadline:
            raise TimeoutError(f"daphne did not listen on port {port} in 30 s")
        time.sleep(0.1)
    return group


def bench_env(database_url: str) -> dict[str, str]:
    return {
        **os.environ,
        "BASTION_DATABASE_URL": database_url,
        "BASTION_REDIS_URL": REDIS_URL,
        "BASTION_LOG_LEVEL": "WARNING",
        "PYTHONPATH": str(REPOSITORY),
    }


def prepare_rows() -> tuple[int, str]:
    """Create one firing incident and a signed-in viewer; return its id and cookie."""
    from django.contrib.auth.models import Permission, User
    from django.test import Client as DjangoClient
    from django.utils import timezone

    from watchers.models import Incident, Watcher

    Incident.objects.all().delete()
    Watcher.objects.all().delete()
    watcher = Watcher.objects.create(
        name="bench-dashboard",
        query="vector(1)",
        threshold=0.5,
        window_seconds=60,
        interval_seconds=15,
    )
    incident = Incident.objects.create(
        watcher=watcher,
        fingerprint="bench-dashboard",
        labels={"instance": "bench:9100"},
        comparison=">",
        threshold=0.5,
        last_value=-1.0,
        opened_at=timezone.now(),
    )
    user, _ = User.objects.get_or_create(username="bench-viewer")
    user.user_permissions.add(Permission.objects.get(codename="view_incident"))
    browser = DjangoClient()
    browser.force_login(user)
    return incident.pk, browser.cookies["sessionid"].value


def delete_live_keys() -> None:
    """Delete the sequence counter and the dashboard group of earlier runs."""
    import redis

    from watchers.services import live

    client = redis.Redis.from_url(REDIS_URL)
    client.delete(live.SEQUENCE_KEY, f"asgi:group:{live.GROUP}")


def measure(clients_count: int, changes: int, interval: float) -> dict:
    database_url = os.environ["BASTION_DATABASE_URL"]
    incident_id, session = prepare_rows()
    delete_live_keys()
    port = free_port()
    daphne = start_daphne(database_url, port)
    stamps = Path(mkdtemp(prefix="bastion-bench-writer-")) / "commits.json"
    writer = [
        sys.executable,
        "-m",
        "bench.dashboard_latency",
        "--writer",
        str(incident_id),
        "--changes",
        str(changes),
        "--interval",
        str(interval),
        "--out",
        str(stamps),
    ]
    headers = {"Cookie": f"sessionid={session}", "Origin": f"http://127.0.0.1:{port}"}
    load_before = load_average()
    try:
        clients = asyncio.run(
            run_clients(
                clients_count,
                f"ws://127.0.0.1:{port}/ws/dashboard/",
                headers,
                writer,
                bench_env(database_url),
            )
        )
    finally:
        daphne.stop()
        delete_live_keys()
    times = json.loads(stamps.read_text(encoding="utf-8"))
    return summarize(clients, times["committed"], times["published"], load_before)


def summarize(
    clients: list[Client],
    committed: list[float],
    published: list[float],
    load_before: str,
) -> dict:
    counted = range(WARM_UP_CHANGES, len(committed))
    deliveries, to_all, to_first, spread, dropped = [], [], [], [], 0
    for change in counted:
        arrivals = [c.arrivals[change] for c in clients if change in c.arrivals]
        dropped += len(clients) - len(arrivals)
        deliveries.extend(arrival - committed[change] for arrival in arrivals)
        if len(arrivals) == len(clients):
            to_all.append(max(arrivals) - committed[change])
            to_first.append(min(arrivals) - committed[change])
            spread.append(max(arrivals) - min(arrivals))
    warm_up_missing = sum(
        1
        for client in clients
        for change in range(WARM_UP_CHANGES)
        if change not in client.arrivals
    )
    return {
        "clients": len(clients),
        "changes": len(counted),
        "deliveries": deliveries,
        "to_all": to_all,
        "to_first": to_first,
        "spread": spread,
        "publishing": [published[i] - committed[i] for i in counted],
        "dropped": dropped + warm_up_missing,
        "sequence_gaps": sum(c.sequence_gaps for c in clients),
        "load_before": load_before,
        "load_after": load_average(),
    }


# Reporting


def render(result: dict, interval: float) -> str:
    def row(name: str, values: list[float]) -> str:
        return (
            f"| {name} | {len(values):,} | {statistics.median(values) * 1000:.1f} ms "
            f"| {percentile(values, 0.95) * 1000:.1f} ms "
            f"| {max(values) * 1000:.1f} ms |"
        )

    to_all = result["to_all"]
    p95 = percentile(to_all, 0.95)
    verdict = "meets" if p95 < GOAL_SECONDS and not result["dropped"] else "misses"
    return "\n".join(
        [
            "| interval | samples | p50 | p95 | max |",
            "|---|---|---|---|---|",
            row("commit to one client's arrival", result["deliveries"]),
            row(f"commit to arrival at all {result['clients']} clients", to_all),
            row("of which: commit to the row sent (writer)", result["publishing"]),
            row("of which: commit to the first client's arrival", result["to_first"]),
            row("of which: first to last client's arrival", result["spread"]),
            "",
            f"Messages dropped: {result['dropped']} of "
            f"{result['clients'] * (result['changes'] + WARM_UP_CHANGES):,} "
            f"(including the {WARM_UP_CHANGES} warm-up changes); sequence gaps "
            f"seen by clients: {result['sequence_gaps']}. One change every "
            f"{interval * 1000:.0f} ms.",
            "",
            f"The p95 from commit to arrival at every client, {p95 * 1000:.1f} ms, "
            f"{verdict} the goal of {GOAL_SECONDS * 1000:.0f} ms with no message "
            "dropped.",
        ]
    )


def page_section(table: str, facts: dict, result: dict, command: str) -> str:
    machine = ", ".join(
        f"{name} {facts[name]}"
        for name in ("CPU", "cores", "memory", "Python", "PostgreSQL")
    )
    return "\n".join(
        [
            f"## {SECTION}",
            "",
            f"{result['clients']} websocket clients, each signed in, stay connected",
            "to one daphne process serving `bastion.asgi`. Another process saves an",
            "incident in its own transaction; its post_save hook renders the row and",
            "publishes it through channels_redis once the transaction commits, as a",
            "Celery worker does. The writer stamps each commit and every client",
            "stamps each arrival with CLOCK_MONOTONIC, which the processes share.",
            f"The first {WARM_UP_CHANGES} changes warm the processes up and count",
            "only towards dropped messages.",
            "",
            "Command (the figures come from one run of it):",
            "",
            f"    {command}",
            "",
            table,
            "",
            *interpretation(result),
            "",
            f"Machine: {machine}. The clients, daphne, the writer, Redis and "
            "PostgreSQL share its cores; load "
            f"average {result['load_before']} before and {result['load_after']} "
            f"after; measured {facts['date']}.",
        ]
    )


def interpretation(result: dict) -> list[str]:
    """Return a paragraph on where the time goes, from this run's medians."""
    sending = statistics.median(result["publishing"]) * 1000
    first = statistics.median(result["to_first"]) * 1000
    spread = statistics.median(result["spread"]) * 1000
    return [
        f"At the median the writer took {sending:.1f} ms from its commit to "
        "having sent the row (two queries, the template and the Redis calls).",
        f"The first client had it {first - sending:.1f} ms later, and the last",
        f"of the {result['clients']} clients {spread:.1f} ms after the first.",
        "channels_redis (4.3) stores one copy of a group message per consumer,",
        "and daphne's layer reads each copy with its own Redis round trips",
        "(`receive_single` in channels_redis/core.py), so that last part grows",
        "with the clients connected to one process.",
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=50, help="websocket clients")
    parser.add_argument("--changes", type=int, default=300, help="changes to commit")
    parser.add_argument(
        "--interval", type=float, default=0.1, help="seconds between changes"
    )
    parser.add_argument(
        "--write",
        type=Path,
        metavar="PATH",
        help="also write the results into the page at PATH, e.g. docs/benchmarks.md",
    )
    # The writer process is this module again, started with --writer.
    parser.add_argument("--writer", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    os.environ.setdefault("BASTION_DATABASE_URL", DEFAULT_DATABASE_URL)
    os.environ["BASTION_REDIS_URL"] = REDIS_URL
    prepare_django()
    if args.writer is not None:
        write_changes(args.writer, args.changes, args.interval, args.out)
        return 0

    result = measure(args.clients, args.changes, args.interval)
    table = render(result, args.interval)
    print(table)
    if args.write is not None:
        facts = machine_facts("/usr/bin/prometheus")
        command = (
            f"python -m bench.dashboard_latency --clients {args.clients} "
            f"--changes {args.changes} --interval {args.interval:g} "
            "--write docs/benchmarks.md"
        )
        write_section(args.write, SECTION, page_section(table, facts, result, command))
        print(f"wrote {args.write}")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bastion.settings")
    sys.exit(main())
