"""Actions on the application's Redis: cache flush, rate limit, IP blocks.

They act on BASTION_TARGET_REDIS_URL, the application's Redis. clear_caches
rejects a flush of the database that Bastion uses as its broker and channel
layer.

How a lowered rate limit restores itself. The application reads its limit
from a key (``ratelimit:global`` by default) that must never expire, so the
lowered value cannot simply be written with a TTL. One Lua script, atomic on
the server, lowers the limit and writes three Bastion-owned keys:

- ``<key>:original`` contains the value before Bastion lowered it. It has no
  expiry on purpose, because it is the only copy of the original.
- ``<key>:restore`` contains the lowered value with ``EX duration_seconds``. Its
  expiry marks the end of the lowering.
- the set ``bastion:lowered_rate_limits`` lists every lowered key.

``restore_rate_limits()``, meant to run every minute from Celery beat, takes
each key of the set whose ``:restore`` marker has expired and, in a second
script, writes the original back if the key still contains the lowered
value, then deletes the bookkeeping. A value someone changed in the meantime
is theirs and is kept. The limit key keeps its own TTL (``KEEPTTL``), so a
key without expiry never gains one. Because the set lives next to the keys,
a restore does not depend on the TemporaryMitigation rows: those only let a
page list and lift the change early. A second tightening while one is active
lowers nothing more.
"""

import ipaddress
import logging
import urllib.parse
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

import redis
from django.conf import settings
from django.utils import timezone

from mitigations.actions.base import (
    Action,
    ActionContext,
    Parameter,
    ParameterError,
    PermanentError,
    RetryableError,
)
from mitigations.choices import Risk, TemporaryKind
from mitigations.models import TemporaryMitigation
from mitigations.registry import register
from mitigations.services.clients import (
    http_request,
    read_credential,
    safe_url,
    target_redis,
)

logger = logging.getLogger(__name__)

LOWERED_INDEX_KEY = "bastion:lowered_rate_limits"
IP_LABELS = ("source_ip", "client_ip", "ip", "remote_addr")
ANALYSIS_STEPS = ("analyze_client_patterns", "traffic_analysis")
_LOOPBACK_HOSTS = {"localhost", "127.0.0.1", "::1"}

# KEYS: the limit key, <key>:original, <key>:restore, the index set.
# ARGV: the duration in seconds. Returns {status, previous, applied, ttl}.
# A marker without expiry (PTTL -1) counts as expired, so it cannot keep a
# limit lowered for ever.
_TIGHTEN_SCRIPT = """
local left = redis.call('PTTL', KEYS[3])
if left > 0 then
  local current = redis.call('GET', KEYS[1]) or ''
  local original = redis.call('GET', KEYS[2]) or ''
  return {'active', current, original, math.ceil(left / 1000)}
end
local current = redis.call('GET', KEYS[1])
local original = redis.call('GET', KEYS[2])
if original and tonumber(original) and current ==
    string.format('%d', math.max(1, math.floor(tonumber(original) / 2))) then
  -- An earlier lowering expired but is not restored yet: start from its original.
  current = original
end
if not current then return {'missing', '', '', 0} end
local number = tonumber(current)
if not number or number ~= math.floor(number) or number < 1 then
  return {'invalid', current, '', 0}
end
local lowered = string.format('%d', math.max(1, math.floor(number / 2)))
redis.call('SET', KEYS[1], lowered, 'KEEPTTL')
redis.call('SET', KEYS[2], current)
redis.call('SET', KEYS[3], lowered, 'EX', ARGV[1])
redis.call('SADD', KEYS[4], KEYS[1])
return {'lowered', current, lowered, tonumber(ARGV[1])}
"""

# KEYS as above. ARGV: '1' to restore before the marker expires.
# Returns {status, original, current}.
_RESTORE_SCRIPT = """
if ARGV[1] ~= '1' and redis.call('PTTL', KEYS[3]) > 0 then
  return {'active', '', ''}
end
local original = redis.call('GET', KEYS[2])
local current = redis.call('GET', KEYS[1])
local status = 'nothing to restore'
if original then
  status = 'changed since'
  local number = tonumber(original)
  if number and current == string.format('%d', math.max(1, math.floor(number / 2))) then
    redis.call('SET', KEYS[1], original, 'KEEPTTL')
    status = 'restored'
  end
end
redis.call('DEL', KEYS[2], KEYS[3])
redis.call('SREM', KEYS[4], KEYS[1])
return {status, original or '', current or ''}
"""


@contextmanager
def _redis_errors(doing: str) -> Iterator[None]:
    """Translate redis-py exceptions into errors marked retryable or permanent."""
    try:
        yield
    except redis.ResponseError as error:
        raise PermanentError(f"{doing}: Redis rejected the command: {error}") from None
    except redis.RedisError as error:
        raise RetryableError(
            f"{doing}: Redis at {safe_url(settings.TARGET_REDIS_URL)} failed: "
            f"{type(error).__name__}: {error}"
        ) from None


def _location(url: str, db: int | None = None) -> tuple[str, int, int]:
    """Return (host, port, db) of a redis:// URL, with loopback names as one."""
    # NOTE: a database given as ?db=N or a unix socket URL is read as db 0.
    parsed = urllib.parse.urlsplit(url)
    host = parsed.hostname or "localhost"
    if host in _LOOPBACK_HOSTS:
        host = "loopback"
    if db is None:
        db = int(parsed.path.strip("/") or 0)
    return host, parsed.port or 6379, db


def _target_db(params: Mapping[str, Any]) -> int:
    if params.get("db") is not None:
        return int(params["db"])
    return _location(settings.TARGET_REDIS_URL or "redis://localhost")[2]


def _check_not_bastion(client: redis.Redis, db: int) -> None:
    """Raise unless ``db`` differs from every Redis database Bastion itself uses."""
    target = _location(settings.TARGET_REDIS_URL, db)
    for name, url in (
        ("BASTION_REDIS_URL", settings.REDIS_URL),
        ("BASTION_BROKER_URL", settings.CELERY_BROKER_URL),
    ):
        own = _location(url)
        if own[2] != db:
            continue
        if own == target or _same_server(client, url):
            raise PermanentError(
                f"Redis database {db} is the one Bastion uses ({name}), so it is "
                "not flushed: point BASTION_TARGET_REDIS_URL or the step's 'db' "
                "at the application's cache database"
            )


def _same_server(client: redis.Redis, bastion_url: str) -> bool:
    """Compare server run ids, for when two host names reach one server."""
    try:
        bastion = redis.Redis.from_url(bastion_url, socket_timeout=2)
        with bastion:
            return bool(
                bastion.info("server")["run_id"] == client.info("server")["run_id"]
            )
    except redis.RedisError:
        return False


def _bearer(credential: str | None) -> dict[str, str]:
    if not credential:
        return {}
    return {"Authorization": f"Bearer {read_credential(credential)}"}


@register("clear_caches")
class ClearCaches(Action):
    risk = Risk.DESTRUCTIVE
    description = (
        "Flush the application's Redis cache database, then ask the application "
        "and the CDN to purge their caches."
    )
    parameters = (
        Parameter(
            "db",
            kind="integer",
            required=False,
            minimum=0,
            help="Redis database number to flush. Default: the one in "
            "BASTION_TARGET_REDIS_URL.",
        ),
        Parameter(
            "app_purge_url",
            kind="url",
            required=False,
            help="The application's cache-clear endpoint, sent a POST.",
        ),
        Parameter(
            "cdn_purge_url",
            kind="url",
            required=False,
            help="The CDN's purge endpoint, sent a POST.",
        ),
        Parameter(
            "credential",
            required=False,
            help="Bearer token for both endpoints: env:NAME or file:/path.",
        ),
    )

    def target(self, params: Mapping[str, Any]) -> str:
        host, port, db = _location(
            settings.TARGET_REDIS_URL or "redis://localhost", params.get("db")
        )
        return f"redis {host}:{port}/{db}"

    def dry_run(self, context: ActionContext) -> dict[str, Any]:
        db = _target_db(context.params)
        client = target_redis(db)
        with _redis_errors(f"counting the keys of database {db}"):
            _check_not_bastion(client, db)
            keys = int(client.dbsize())
        return {
            "would_flush": {"db": db, "keys": keys},
            "would_post": [safe_url(url) for url in _purge_urls(context.params)],
        }

    def run(self, context: ActionContext) -> dict[str, Any]:
        db = _target_db(context.params)
        client = target_redis(db)
        with _redis_errors(f"flushing database {db}"):
            _check_not_bastion(client, db)
            keys = int(client.dbsize())
            client.flushdb()
        logger.info(
            "clear_caches flushed Redis database %s (%s keys) for incident %s",
            db,
            keys,
            context.incident_id,
        )
        flushed = {"db": db, "keys_before": keys}
        purges = self._purge(context, flushed)
        return {"flushed": flushed, "purges": purges}

    def _purge(
        self, context: ActionContext, flushed: dict[str, int]
    ) -> list[dict[str, Any]]:
        headers = _bearer(context.params.get("credential"))
        purges = []
        for url in _purge_urls(context.params):
            try:
                response = http_request(
                    "POST",
                    url,
                    timeout_seconds=max(1.0, min(10.0, context.remaining_seconds())),
                    headers=headers,
                )
            except (RetryableError, PermanentError) as error:
                # A retry flushes again, which leaves the cache as empty as now.
                raise type(error)(
                    f"flushed database {flushed['db']} ({flushed['keys_before']} "
                    f"keys), then {error}"
                ) from None
            purges.append({"url": safe_url(url), "status": response.status_code})
        return purges


def _purge_urls(params: Mapping[str, Any]) -> list[str]:
    names = ("app_purge_url", "cdn_purge_url")
    return [params[name] for name in names if params.get(name)]


def _rate_limit_keys(key: str) -> list[str]:
    return [key, f"{key}:original", f"{key}:restore", LOWERED_INDEX_KEY]


@register("tighten_rate_limits")
class TightenRateLimits(Action):
    risk = Risk.DISRUPTIVE
    description = (
        "Halve the application's rate limit in Redis for a while; "
        "restore_rate_limits() writes the original back afterwards."
    )
    parameters = (
        Parameter(
            "key",
            default="ratelimit:global",
            help="Redis key that contains the limit as a whole number.",
        ),
        Parameter(
            "duration_seconds",
            kind="integer",
            default=3600,
            minimum=60,
            help="How long the lowered limit stays, in seconds.",
        ),
    )

    def target(self, params: Mapping[str, Any]) -> str:
        return f"redis key {params.get('key', 'ratelimit:global')}"

    def dry_run(self, context: ActionContext) -> dict[str, Any]:
        key = context.params["key"]
        client = target_redis()
        with _redis_errors(f"reading {key}"):
            current = _text(client.get(key))
            original = _text(client.get(f"{key}:original"))
            marker_ms = client.pttl(f"{key}:restore")
        if marker_ms > 0:
            return {"key": key, "current": current, "would_change": "nothing"}
        number = _whole_number(key, current)
        if original and original.isdigit() and number == max(1, int(original) // 2):
            # An expired lowering not restored yet: the script starts from its
            # original value.
            number = int(original)
        return {
            "key": key,
            "current": number,
            "would_set": max(1, number // 2),
            "for_seconds": context.params["duration_seconds"],
        }

    def run(self, context: ActionContext) -> dict[str, Any]:
        key, duration = context.params["key"], context.params["duration_seconds"]
        client = target_redis()
        with _redis_errors(f"lowering {key}"):
            status, previous, applied, ttl = client.eval(
                _TIGHTEN_SCRIPT, 4, *_rate_limit_keys(key), duration
            )
        if status == "missing":
            raise PermanentError(
                f"the rate limit key {key!r} does not exist in Redis: set the "
                "step's 'key' to the key the application reads its limit from"
            )
        if status == "invalid":
            _whole_number(key, previous)
        restore_at = timezone.now() + timedelta(seconds=int(ttl))
        output = {
            "key": key,
            "status": "already lowered" if status == "active" else "lowered",
            "previous": previous,
            "applied": applied,
            "restore_at": restore_at.isoformat(),
        }
        if status == "lowered":
            self._record(context, key, previous, applied, restore_at)
        logger.info(
            "tighten_rate_limits %s %s from %s to %s until %s for incident %s",
            key,
            output["status"],
            previous,
            applied,
            output["restore_at"],
            context.incident_id,
        )
        return output

    def _record(
        self,
        context: ActionContext,
        key: str,
        previous: str,
        applied: str,
        restore_at: datetime,
    ) -> None:
        TemporaryMitigation.objects.create(
            kind=TemporaryKind.RATE_LIMIT,
            target=f"rate limit {key}",
            redis_key=key,
            previous_value=previous,
            applied_value=applied,
            expires_at=restore_at,
            run_id=context.run_id,
        )

    def reconcile(self, context: ActionContext) -> dict[str, Any] | None:
        key = context.params["key"]
        with _redis_errors(f"reading {key}:restore"):
            lowered = target_redis().exists(f"{key}:restore")
        return {"took_effect": bool(lowered)}


def _text(value: Any) -> str | None:
    """Narrow a reply of the client, which decodes responses, to str."""
    return None if value is None else str(value)


def _whole_number(key: str, value: str | None) -> int:
    if value is None:
        raise PermanentError(
            f"the rate limit key {key!r} does not exist in Redis: set the step's "
            "'key' to the key the application reads its limit from"
        )
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number < 1:
        raise PermanentError(
            f"the rate limit key {key!r} contains {value!r}, which is not a whole "
            "number of at least 1, so it cannot be halved: fix the value or the "
            "step's 'key'"
        )
    return number


def _restore(client: redis.Redis, key: str, force: bool) -> str:
    with _redis_errors(f"restoring {key}"):
        status, original, current = client.eval(
            _RESTORE_SCRIPT, 4, *_rate_limit_keys(key), "1" if force else "0"
        )
    if status != "active":
        logger.info(
            "rate limit %s: %s (original %s, value found %s)",
            key,
            status,
            original or "-",
            current or "-",
        )
    return str(status)


def _mark_lifted(kind: str, key: str, user: Any = None) -> int:
    return TemporaryMitigation.objects.filter(
        kind=kind, redis_key=key, lifted_at__isnull=True
    ).update(lifted_at=timezone.now(), lifted_by=user)


def restore_rate_limits() -> list[str]:
    """Restore every lowered rate limit whose time is up; return those keys.

    Meant for Celery beat, every minute. It does nothing when
    BASTION_TARGET_REDIS_URL is not set.
    """
    # NOTE: nothing else restores a limit, so while beat does not run this,
    # a lowered limit stays lowered past its restore_at.
    if not settings.TARGET_REDIS_URL:
        return []
    client = target_redis()
    with _redis_errors("listing the lowered rate limits"):
        keys = sorted(str(key) for key in client.smembers(LOWERED_INDEX_KEY))
    finished = [key for key in keys if _restore(client, key, force=False) != "active"]
    for key in finished:
        _mark_lifted(TemporaryKind.RATE_LIMIT, key)

    # Rows whose key Redis no longer lists, for instance after Redis lost its
    # data, describe nothing that is still in place.
    with _redis_errors("listing the lowered rate limits"):
        still_lowered = client.smembers(LOWERED_INDEX_KEY)
    TemporaryMitigation.objects.filter(
        kind=TemporaryKind.RATE_LIMIT,
        lifted_at__isnull=True,
        expires_at__lte=timezone.now(),
    ).exclude(redis_key__in=still_lowered).update(lifted_at=timezone.now())
    return finished


def lift_temporary(
    mitigation: TemporaryMitigation, user: Any = None
) -> TemporaryMitigation:
    """End a temporary mitigation now: restore the limit or delete the block key.

    Every open row for the same Redis key is marked lifted with it, because
    they all describe the one key.
    """
    if mitigation.lifted_at is not None:
        return mitigation
    client = target_redis()
    if mitigation.kind == TemporaryKind.RATE_LIMIT:
        _restore(client, mitigation.redis_key, force=True)
    else:
        with _redis_errors(f"deleting {mitigation.redis_key}"):
            client.delete(mitigation.redis_key)
    _mark_lifted(mitigation.kind, mitigation.redis_key, user)
    logger.info(
        "%s on %s lifted by %s", mitigation.kind, mitigation.target, user or "Bastion"
    )
    mitigation.refresh_from_db()
    return mitigation


def _blockable(ip: str, allow: list[str]) -> str | None:
    """Return why ``ip`` must not be blocked, or None when it may be."""
    address = ipaddress.ip_address(ip)
    mapped = getattr(address, "ipv4_mapped", None)
    if mapped is not None:
        address = mapped
    if address.is_loopback or address.is_unspecified or address.is_link_local:
        return "loopback, unspecified and link-local addresses are never blocked"
    for entry in allow:
        if address in ipaddress.ip_network(entry, strict=False):
            return f"it is in the allow list entry {entry}"
    return None


def _analysed_ips(previous: Mapping[str, dict[str, Any]]) -> list[Any]:
    for step in ANALYSIS_STEPS:
        clients = (previous.get(step) or {}).get("clients")
        if isinstance(clients, list):
            return [item.get("ip") for item in clients if isinstance(item, dict)]
    return []


@register("temporary_ip_block", "selective_blocking")
class BlockIps(Action):
    risk = Risk.DISRUPTIVE
    description = (
        "Write blocked:<ip> keys with an expiry for the incident's source IPs or "
        "for the heaviest clients an earlier analysis step found."
    )
    parameters = (
        Parameter(
            "ips",
            kind="ip_list",
            required=False,
            labels=IP_LABELS,
            help="IP addresses to block. Default: the incident's IP label, else "
            "the clients of an earlier analyze_client_patterns or "
            "traffic_analysis step.",
        ),
        Parameter(
            "ttl_seconds",
            kind="integer",
            default=900,
            minimum=1,
            help="How long each block lasts, in seconds.",
        ),
        Parameter(
            "allow",
            kind="string_list",
            default=[],
            required=False,
            help="Addresses or networks (CIDR) that are never blocked.",
        ),
        Parameter(
            "max_ips",
            kind="integer",
            default=20,
            minimum=1,
            help="At most this many addresses are blocked in one run.",
        ),
        Parameter("key_prefix", default="blocked:", help="Prefix of the block keys."),
    )

    def clean(
        self,
        values: Mapping[str, Any],
        labels: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        cleaned = super().clean(values, labels)
        for entry in cleaned.get("allow", []):
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError:
                raise ParameterError(
                    "allow", f"{entry!r} is not an IP address or a CIDR network"
                ) from None
        return cleaned

    def target(self, params: Mapping[str, Any]) -> str:
        ips = params.get("ips")
        if not ips:
            return "ip blocks from an earlier analysis step"
        more = f" and {len(ips) - 3} more" if len(ips) > 3 else ""
        return f"ip block {', '.join(ips[:3])}{more}"

    def _plan(self, context: ActionContext) -> tuple[list[str], list[dict[str, str]]]:
        """Split the candidate addresses into those to block and those rejected."""
        params = context.params
        candidates = params.get("ips") or _analysed_ips(context.previous)
        if not candidates:
            raise PermanentError(
                "no IP address to block: set the step's 'ips', give the incident "
                f"one of the labels {list(IP_LABELS)}, or run "
                "analyze_client_patterns before this step"
            )
        blocked: list[str] = []
        rejected: list[dict[str, str]] = []
        for value in candidates:
            try:
                ip = str(ipaddress.ip_address(str(value).strip()))
            except ValueError:
                rejected.append({"ip": str(value), "reason": "not an IP address"})
                continue
            reason = _blockable(ip, params["allow"])
            if reason is None and len(blocked) >= params["max_ips"]:
                reason = f"more than max_ips={params['max_ips']} addresses"
            if reason is not None:
                rejected.append({"ip": ip, "reason": reason})
            elif ip not in blocked:
                blocked.append(ip)
        return blocked, rejected

    def dry_run(self, context: ActionContext) -> dict[str, Any]:
        ips, rejected = self._plan(context)
        prefix = context.params["key_prefix"]
        return {
            "would_block": [f"{prefix}{ip}" for ip in ips],
            "ttl_seconds": context.params["ttl_seconds"],
            "rejected": rejected,
        }

    def run(self, context: ActionContext) -> dict[str, Any]:
        ips, rejected = self._plan(context)
        if not ips:
            reasons = "; ".join(f"{r['ip']}: {r['reason']}" for r in rejected)
            raise PermanentError(f"no address may be blocked ({reasons})")
        ttl, prefix = context.params["ttl_seconds"], context.params["key_prefix"]
        value = f"bastion incident {context.incident_id}"
        with _redis_errors("writing the block keys"):
            pipeline = target_redis().pipeline(transaction=False)
            for ip in ips:
                # SET with EX in one command: a block key never lacks its expiry.
                pipeline.set(f"{prefix}{ip}", value, ex=ttl)
            pipeline.execute()
        expires_at = timezone.now() + timedelta(seconds=ttl)
        self._record(context, ips, prefix, value, expires_at)
        logger.info(
            "%s blocked %s until %s for incident %s",
            self.name,
            ", ".join(ips),
            expires_at.isoformat(),
            context.incident_id,
        )
        return {
            "blocked": ips,
            "expires_at": expires_at.isoformat(),
            "ttl_seconds": ttl,
            "rejected": rejected,
        }

    def _record(
        self,
        context: ActionContext,
        ips: list[str],
        prefix: str,
        value: str,
        expires_at: datetime,
    ) -> None:
        TemporaryMitigation.objects.bulk_create(
            TemporaryMitigation(
                kind=TemporaryKind.IP_BLOCK,
                target=f"ip {ip}",
                redis_key=f"{prefix}{ip}",
                applied_value=value,
                expires_at=expires_at,
                run_id=context.run_id,
            )
            for ip in ips
        )

    def reconcile(self, context: ActionContext) -> dict[str, Any] | None:
        keys = list(
            TemporaryMitigation.objects.filter(
                run_id=context.run_id, kind=TemporaryKind.IP_BLOCK
            ).values_list("redis_key", flat=True)
        )
        if context.run_id is None or not keys:
            return None
        with _redis_errors("reading the block keys"):
            present = target_redis().exists(*keys)
        return {"took_effect": present == len(keys), "keys": keys}
