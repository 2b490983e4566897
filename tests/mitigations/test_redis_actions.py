"""Redis actions against the machine's Redis: flush, rate limit, IP blocks.

Each test names its keys with a prefix of its own in database 13; the flush
tests use database 15 and skip when it contains keys they did not write.
"""

import threading
from datetime import timedelta

import pytest
import redis
from django.utils import timezone

from devstack.receiver import HttpReceiver
from mitigations.actions.base import ParameterError, PermanentError, RetryableError
from mitigations.actions.redis_store import (
    LOWERED_INDEX_KEY,
    lift_temporary,
    restore_rate_limits,
)
from mitigations.choices import TemporaryKind
from mitigations.models import ActionRun, MitigationAttempt, TemporaryMitigation
from mitigations.registry import get_action
from mitigations.services.clients import target_redis
from tests.mitigations.conftest import REDIS_SERVER
from tests.watchers.factories import make_watcher
from watchers.models import Incident

pytestmark = pytest.mark.django_db

FLUSH_DB = 15


@pytest.fixture
def receiver():
    server = HttpReceiver()
    yield server
    server.stop()


@pytest.fixture
def flush_db(settings):
    """Database 15, empty, as the application's cache."""
    client = redis.Redis.from_url(f"{REDIS_SERVER}/{FLUSH_DB}", decode_responses=True)
    if client.dbsize():
        # Failing, not skipping, keeps the flush tests from vanishing quietly.
        pytest.fail(
            f"Redis database {FLUSH_DB} holds keys these tests did not write, and "
            f"they flush it: empty it with 'redis-cli -n {FLUSH_DB} flushdb' if "
            "nothing else uses it"
        )
    settings.TARGET_REDIS_URL = f"{REDIS_SERVER}/{FLUSH_DB}"
    target_redis.cache_clear()
    yield client
    client.flushdb()
    client.close()
    target_redis.cache_clear()


def recorded_run(action: str) -> ActionRun:
    """An ActionRun row, so temporary mitigations can point at their run."""
    now = timezone.now()
    incident = Incident.objects.create(
        watcher=make_watcher(), fingerprint="f" * 32, opened_at=now
    )
    attempt = MitigationAttempt.objects.create(
        incident=incident, number=1, started_at=now
    )
    return ActionRun.objects.create(
        attempt=attempt, incident=incident, position=1, action=action, queued_at=now
    )


# clear_caches


def test_clear_caches_flushes_and_purges(flush_db, receiver, context_for, tmp_path):
    flush_db.set("page:/home", "<html>")
    flush_db.set("page:/about", "<html>")
    secret = tmp_path / "purge-token"
    secret.write_text("purge-secret-1\n")
    context = context_for(
        "clear_caches",
        {
            "app_purge_url": f"{receiver.url}/cache/clear",
            "cdn_purge_url": f"{receiver.url}/cdn/purge?zone=eu",
            "credential": f"file:{secret}",
        },
    )

    output = get_action("clear_caches").run(context)

    assert flush_db.dbsize() == 0
    assert output["flushed"] == {"db": FLUSH_DB, "keys_before": 2}
    assert receiver.paths() == ["/cache/clear", "/cdn/purge?zone=eu"]
    assert receiver.requests[0].method == "POST"
    assert receiver.requests[1].headers["Authorization"] == "Bearer purge-secret-1"
    assert [purge["status"] for purge in output["purges"]] == [200, 200]
    assert "purge-secret-1" not in repr(output)


def test_clear_caches_output_hides_query_string(flush_db, receiver, context_for):
    context = context_for(
        "clear_caches", {"cdn_purge_url": f"{receiver.url}/purge?key=abc"}
    )

    output = get_action("clear_caches").run(context)

    assert output["purges"][0]["url"] == f"{receiver.url}/purge"


def test_clear_caches_rejects_bastion_broker_database(
    flush_db, receiver, context_for, settings
):
    flush_db.set("celery", "queue")
    settings.REDIS_URL = f"redis://localhost:6379/{FLUSH_DB}"
    context = context_for("clear_caches", {"app_purge_url": receiver.url})

    with pytest.raises(PermanentError, match="the one Bastion uses"):
        get_action("clear_caches").run(context)

    assert flush_db.get("celery") == "queue"
    assert receiver.paths() == []


def test_clear_caches_db_parameter_picks_database(
    flush_db, target_redis_db, context_for, settings
):
    settings.TARGET_REDIS_URL = f"{REDIS_SERVER}/13"
    kept = target_redis_db.key("kept")
    target_redis_db.client.set(kept, "1")
    flush_db.set("cached", "1")

    output = get_action("clear_caches").run(context_for("clear_caches", {"db": 15}))

    assert output["flushed"]["keys_before"] == 1
    assert flush_db.dbsize() == 0
    assert target_redis_db.client.get(kept) == "1"


def test_clear_caches_dry_run_changes_nothing(flush_db, receiver, context_for):
    flush_db.set("page:/home", "<html>")
    context = context_for("clear_caches", {"app_purge_url": f"{receiver.url}/clear"})

    output = get_action("clear_caches").dry_run(context)

    assert output["would_flush"] == {"db": FLUSH_DB, "keys": 1}
    assert output["would_post"] == [f"{receiver.url}/clear"]
    assert flush_db.get("page:/home") == "<html>"
    assert receiver.paths() == []


def test_clear_caches_failed_purge_is_retryable(flush_db, context_for):
    receiver = HttpReceiver(statuses=[503])
    context = context_for("clear_caches", {"app_purge_url": receiver.url})

    try:
        with pytest.raises(RetryableError, match="flushed database 15"):
            get_action("clear_caches").run(context)
        assert len(receiver.requests) == 1
    finally:
        receiver.stop()


def test_clear_caches_rejects_bad_url(context_for):
    with pytest.raises(ParameterError) as raised:
        context_for("clear_caches", {"app_purge_url": "ftp://cache/clear"})

    assert raised.value.field == "app_purge_url"


# tighten_rate_limits


def test_tighten_halves_limit_without_expiring_it(target_redis_db, context_for):
    client = target_redis_db.client
    key = target_redis_db.key("ratelimit")
    client.set(key, "600")
    context = context_for("tighten_rate_limits", {"key": key, "duration_seconds": 120})

    output = get_action("tighten_rate_limits").run(context)

    assert client.get(key) == "300"
    assert client.ttl(key) == -1
    assert client.get(f"{key}:original") == "600"
    assert 110 <= client.ttl(f"{key}:restore") <= 120
    assert key in client.smembers(LOWERED_INDEX_KEY)
    assert output["previous"] == "600"
    assert output["applied"] == "300"


def test_tighten_records_temporary_mitigation(target_redis_db, context_for):
    key = target_redis_db.key("ratelimit")
    target_redis_db.client.set(key, "100")
    run = recorded_run("tighten_rate_limits")
    context = context_for("tighten_rate_limits", {"key": key}, run_id=run.pk)

    get_action("tighten_rate_limits").run(context)

    row = TemporaryMitigation.objects.get(redis_key=key)
    assert row.kind == TemporaryKind.RATE_LIMIT
    assert row.previous_value == "100"
    assert row.applied_value == "50"
    assert row.run_id == run.pk
    assert row.expires_at > timezone.now() + timedelta(seconds=3590)


def test_tighten_keeps_ttl_the_key_already_had(target_redis_db, context_for):
    client = target_redis_db.client
    key = target_redis_db.key("ratelimit")
    client.set(key, "40", ex=5000)

    get_action("tighten_rate_limits").run(
        context_for("tighten_rate_limits", {"key": key})
    )

    assert client.get(key) == "20"
    assert 4990 <= client.ttl(key) <= 5000


def test_tighten_twice_lowers_once(target_redis_db, context_for):
    client = target_redis_db.client
    key = target_redis_db.key("ratelimit")
    client.set(key, "600")
    context = context_for("tighten_rate_limits", {"key": key})
    action = get_action("tighten_rate_limits")

    action.run(context)
    second = action.run(context)

    assert client.get(key) == "300"
    assert second["status"] == "already lowered"
    assert TemporaryMitigation.objects.filter(redis_key=key).count() == 1


def test_tighten_never_goes_below_one(target_redis_db, context_for):
    key = target_redis_db.key("ratelimit")
    target_redis_db.client.set(key, "1")

    output = get_action("tighten_rate_limits").run(
        context_for("tighten_rate_limits", {"key": key})
    )

    assert target_redis_db.client.get(key) == "1"
    assert output["applied"] == "1"


def test_tighten_missing_key_is_permanent(target_redis_db, context_for):
    key = target_redis_db.key("absent")
    context = context_for("tighten_rate_limits", {"key": key})

    with pytest.raises(PermanentError, match="does not exist"):
        get_action("tighten_rate_limits").run(context)

    assert target_redis_db.client.exists(f"{key}:original") == 0


def test_tighten_text_value_is_permanent(target_redis_db, context_for):
    key = target_redis_db.key("ratelimit")
    target_redis_db.client.set(key, "unlimited")
    context = context_for("tighten_rate_limits", {"key": key})

    with pytest.raises(PermanentError, match="not a whole number"):
        get_action("tighten_rate_limits").run(context)

    assert target_redis_db.client.get(key) == "unlimited"


def test_tighten_dry_run_changes_nothing(target_redis_db, context_for):
    client = target_redis_db.client
    key = target_redis_db.key("ratelimit")
    client.set(key, "600")
    context = context_for("tighten_rate_limits", {"key": key})

    output = get_action("tighten_rate_limits").dry_run(context)

    assert output["would_set"] == 300
    assert client.get(key) == "600"
    assert client.exists(f"{key}:original") == 0
    assert TemporaryMitigation.objects.count() == 0


def test_tighten_rejects_short_duration(context_for):
    with pytest.raises(ParameterError) as raised:
        context_for("tighten_rate_limits", {"duration_seconds": 5})

    assert raised.value.field == "duration_seconds"


def test_tighten_rejects_unknown_parameter(context_for):
    with pytest.raises(ParameterError) as raised:
        context_for("tighten_rate_limits", {"factor": 4})

    assert raised.value.field == "factor"


def test_tighten_reconcile_sees_lowered_limit(target_redis_db, context_for):
    key = target_redis_db.key("ratelimit")
    target_redis_db.client.set(key, "8")
    context = context_for("tighten_rate_limits", {"key": key})
    action = get_action("tighten_rate_limits")

    before = action.reconcile(context)
    action.run(context)
    after = action.reconcile(context)

    assert before == {"took_effect": False}
    assert after == {"took_effect": True}


def expire_marker(client: redis.Redis, key: str) -> None:
    """Let the lowering's time run out now instead of after its duration."""
    client.pexpire(f"{key}:restore", 1)
    while client.exists(f"{key}:restore"):
        threading.Event().wait(0.01)


def test_restore_writes_original_back(target_redis_db, context_for):
    client = target_redis_db.client
    key = target_redis_db.key("ratelimit")
    client.set(key, "600")
    get_action("tighten_rate_limits").run(
        context_for("tighten_rate_limits", {"key": key})
    )
    expire_marker(client, key)

    restored = restore_rate_limits()

    assert key in restored
    assert client.get(key) == "600"
    assert client.ttl(key) == -1
    assert client.exists(f"{key}:original") == 0
    assert key not in client.smembers(LOWERED_INDEX_KEY)
    assert TemporaryMitigation.objects.get(redis_key=key).lifted_at is not None


def test_restore_leaves_active_lowering(target_redis_db, context_for):
    client = target_redis_db.client
    key = target_redis_db.key("ratelimit")
    client.set(key, "600")
    get_action("tighten_rate_limits").run(
        context_for("tighten_rate_limits", {"key": key})
    )

    restored = restore_rate_limits()

    assert key not in restored
    assert client.get(key) == "300"
    assert TemporaryMitigation.objects.get(redis_key=key).lifted_at is None


def test_restore_keeps_value_changed_meanwhile(target_redis_db, context_for):
    client = target_redis_db.client
    key = target_redis_db.key("ratelimit")
    client.set(key, "600")
    get_action("tighten_rate_limits").run(
        context_for("tighten_rate_limits", {"key": key})
    )
    client.set(key, "450")
    expire_marker(client, key)

    restore_rate_limits()

    assert client.get(key) == "450"
    assert client.exists(f"{key}:original") == 0


def test_restore_works_without_rows(target_redis_db, context_for):
    client = target_redis_db.client
    key = target_redis_db.key("ratelimit")
    client.set(key, "600")
    get_action("tighten_rate_limits").run(
        context_for("tighten_rate_limits", {"key": key})
    )
    TemporaryMitigation.objects.all().delete()
    expire_marker(client, key)

    restore_rate_limits()

    assert client.get(key) == "600"


def test_marker_without_expiry_still_restores(target_redis_db, context_for):
    client = target_redis_db.client
    key = target_redis_db.key("ratelimit")
    client.set(key, "600")
    get_action("tighten_rate_limits").run(
        context_for("tighten_rate_limits", {"key": key})
    )
    client.persist(f"{key}:restore")

    restore_rate_limits()

    assert client.get(key) == "600"


def test_tighten_after_unrestored_expiry_starts_from_original(
    target_redis_db, context_for
):
    client = target_redis_db.client
    key = target_redis_db.key("ratelimit")
    client.set(key, "600")
    context = context_for("tighten_rate_limits", {"key": key})
    action = get_action("tighten_rate_limits")
    action.run(context)
    expire_marker(client, key)

    output = action.run(context)

    assert client.get(key) == "300"
    assert output["previous"] == "600"
    assert client.get(f"{key}:original") == "600"


def test_lift_restores_rate_limit_early(
    target_redis_db, context_for, django_user_model
):
    client = target_redis_db.client
    key = target_redis_db.key("ratelimit")
    client.set(key, "600")
    get_action("tighten_rate_limits").run(
        context_for("tighten_rate_limits", {"key": key})
    )
    operator = django_user_model.objects.create_user(username="operator")

    row = lift_temporary(TemporaryMitigation.objects.get(redis_key=key), operator)

    assert client.get(key) == "600"
    assert client.exists(f"{key}:restore") == 0
    assert row.lifted_at is not None
    assert row.lifted_by == operator


# temporary_ip_block and selective_blocking


def block_values(target_redis_db, **values):
    return {"key_prefix": f"{target_redis_db.prefix}blocked:", **values}


def test_block_from_incident_label(target_redis_db, context_for):
    client = target_redis_db.client
    context = context_for(
        "temporary_ip_block",
        block_values(target_redis_db),
        labels={"source_ip": "203.0.113.7", "job": "auth"},
    )

    output = get_action("temporary_ip_block").run(context)

    key = f"{target_redis_db.prefix}blocked:203.0.113.7"
    assert client.exists(key) == 1
    assert 890 <= client.ttl(key) <= 900
    assert output["blocked"] == ["203.0.113.7"]
    assert output["ttl_seconds"] == 900


def test_block_default_key_prefix(target_redis_db, context_for):
    target_redis_db.created.append("blocked:198.51.100.201")
    context = context_for("temporary_ip_block", {"ips": ["198.51.100.201"]})

    get_action("temporary_ip_block").run(context)

    assert target_redis_db.client.ttl("blocked:198.51.100.201") > 0


def test_block_sends_set_with_ex_only(target_redis_db, context_for):
    """Watch the server with MONITOR: each key is one SET ... EX, no EXPIRE."""
    client = target_redis_db.client
    prefix = f"{target_redis_db.prefix}blocked:"
    done = f"{target_redis_db.prefix}done"
    commands: list[str] = []
    listening = threading.Event()

    def watch() -> None:
        monitor_client = redis.Redis.from_url(REDIS_SERVER, decode_responses=True)
        with monitor_client.monitor() as monitor:
            listening.set()
            for event in monitor.listen():
                if target_redis_db.prefix in event["command"]:
                    commands.append(event["command"])
                if done in event["command"]:
                    return

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    listening.wait(5)
    threading.Event().wait(0.2)
    context = context_for(
        "selective_blocking",
        block_values(
            target_redis_db, ips=["203.0.113.8", "2001:db8::8"], ttl_seconds=60
        ),
    )

    get_action("selective_blocking").run(context)
    client.get(done)
    watcher.join(10)

    blocking = [command for command in commands if done not in command]
    assert len(blocking) == 2
    assert all(command.startswith("SET ") for command in blocking)
    assert all(command.endswith(" EX 60") for command in blocking)
    assert client.ttl(f"{prefix}2001:db8::8") > 0


def test_block_from_earlier_analysis(target_redis_db, context_for):
    previous = {
        "analyze_client_patterns": {
            "clients": [
                {"ip": "198.51.100.20", "value": 90.0},
                {"ip": "10.1.2.3", "value": 40.0},
                {"ip": "127.0.0.1", "value": 30.0},
                {"ip": "not-an-ip", "value": 20.0},
            ]
        }
    }
    context = context_for(
        "selective_blocking",
        block_values(target_redis_db, allow=["10.0.0.0/8"]),
        previous=previous,
    )

    output = get_action("selective_blocking").run(context)

    assert output["blocked"] == ["198.51.100.20"]
    assert [rejected["ip"] for rejected in output["rejected"]] == [
        "10.1.2.3",
        "127.0.0.1",
        "not-an-ip",
    ]
    assert (
        target_redis_db.client.exists(f"{target_redis_db.prefix}blocked:10.1.2.3") == 0
    )


def test_block_records_row_per_ip(target_redis_db, context_for):
    context = context_for(
        "temporary_ip_block",
        block_values(target_redis_db, ips=["203.0.113.9", "203.0.113.10"]),
    )

    get_action("temporary_ip_block").run(context)

    rows = TemporaryMitigation.objects.filter(kind=TemporaryKind.IP_BLOCK)
    assert sorted(rows.values_list("target", flat=True)) == [
        "ip 203.0.113.10",
        "ip 203.0.113.9",
    ]
    assert all(row.expires_at > timezone.now() for row in rows)


def test_block_caps_number_of_ips(target_redis_db, context_for):
    context = context_for(
        "temporary_ip_block",
        block_values(
            target_redis_db,
            ips=["203.0.113.1", "203.0.113.2", "203.0.113.3"],
            max_ips=2,
        ),
    )

    output = get_action("temporary_ip_block").run(context)

    assert output["blocked"] == ["203.0.113.1", "203.0.113.2"]
    assert output["rejected"][0]["ip"] == "203.0.113.3"


def test_block_only_loopback_fails(target_redis_db, context_for):
    context = context_for(
        "temporary_ip_block",
        block_values(target_redis_db),
        labels={"client_ip": "::ffff:127.0.0.1"},
    )

    with pytest.raises(PermanentError, match="never blocked"):
        get_action("temporary_ip_block").run(context)


def test_block_without_any_ip_fails(target_redis_db, context_for):
    context = context_for("temporary_ip_block", block_values(target_redis_db))

    with pytest.raises(PermanentError, match="no IP address to block"):
        get_action("temporary_ip_block").run(context)


def test_block_dry_run_writes_nothing(target_redis_db, context_for):
    context = context_for(
        "temporary_ip_block", block_values(target_redis_db, ips=["203.0.113.11"])
    )

    output = get_action("temporary_ip_block").dry_run(context)

    assert output["would_block"] == [f"{target_redis_db.prefix}blocked:203.0.113.11"]
    assert (
        list(target_redis_db.client.scan_iter(match=f"{target_redis_db.prefix}*")) == []
    )
    assert TemporaryMitigation.objects.count() == 0


@pytest.mark.parametrize(
    ("values", "labels", "field"),
    [
        ({"ips": ["203.0.113.300"]}, {}, "ips"),
        ({}, {"source_ip": "example.com"}, "ips"),
        ({"ips": ["203.0.113.1"], "allow": ["10.0.0.0/33"]}, {}, "allow"),
        ({"ips": ["203.0.113.1"], "ttl_seconds": 0}, {}, "ttl_seconds"),
        ({"ips": ["203.0.113.1"], "block_for": 5}, {}, "block_for"),
    ],
)
def test_block_rejects_invalid_parameter(context_for, values, labels, field):
    with pytest.raises(ParameterError) as raised:
        context_for("temporary_ip_block", values, labels=labels)

    assert raised.value.field == field


def test_block_reconcile_checks_keys(target_redis_db, context_for):
    run = recorded_run("temporary_ip_block")
    context = context_for(
        "temporary_ip_block",
        block_values(target_redis_db, ips=["203.0.113.12"]),
        run_id=run.pk,
    )
    action = get_action("temporary_ip_block")
    action.run(context)

    present = action.reconcile(context)
    target_redis_db.client.delete(f"{target_redis_db.prefix}blocked:203.0.113.12")
    gone = action.reconcile(context)

    assert present["took_effect"] is True
    assert gone["took_effect"] is False


def test_lift_deletes_block_key(target_redis_db, context_for):
    context = context_for(
        "temporary_ip_block", block_values(target_redis_db, ips=["203.0.113.13"])
    )
    get_action("temporary_ip_block").run(context)
    row = TemporaryMitigation.objects.get(kind=TemporaryKind.IP_BLOCK)

    lifted = lift_temporary(row)

    assert target_redis_db.client.exists(row.redis_key) == 0
    assert lifted.lifted_at is not None
