"""Fixtures for action tests: a context builder and a Redis database of their own."""

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis

from mitigations.actions.base import ActionContext
from mitigations.registry import get_action
from mitigations.services.clients import target_redis

# Celery end-to-end tests use databases 10 to 14 as brokers and the demo
# uses 9, so action tests share 13 only for keys they name themselves.
ACTION_REDIS_DB = 13
REDIS_SERVER = "redis://127.0.0.1:6379"


@pytest.fixture
def context_for() -> Callable[..., ActionContext]:
    """Return a function building the context a step of ``name`` would get."""

    def build(
        name: str,
        values: dict[str, Any] | None = None,
        labels: dict[str, str] | None = None,
        previous: dict[str, dict[str, Any]] | None = None,
        incident_id: int = 1,
        run_id: int | None = None,
    ) -> ActionContext:
        labels = labels or {}
        params = get_action(name).clean(values or {}, labels=labels)
        return ActionContext(
            incident_id=incident_id,
            labels=labels,
            params=params,
            previous=previous or {},
            run_id=run_id,
        )

    return build


class RedisKeys:
    """Names keys unique to one test and deletes them when the test ends."""

    def __init__(self, client: redis.Redis) -> None:
        self.client = client
        self.prefix = f"test:{uuid.uuid4().hex[:12]}:"
        self.created: list[str] = []

    def key(self, name: str) -> str:
        key = f"{self.prefix}{name}"
        self.created.append(key)
        return key

    def delete_created(self) -> None:
        for key in self.created:
            self.client.delete(key, f"{key}:original", f"{key}:restore")
            self.client.srem("bastion:lowered_rate_limits", key)
        for key in self.client.scan_iter(match=f"{self.prefix}*"):
            self.client.delete(key)


@pytest.fixture
def target_redis_db(settings) -> Iterator[RedisKeys]:
    """Point BASTION_TARGET_REDIS_URL at database 13 and clean up the test's keys."""
    settings.TARGET_REDIS_URL = f"{REDIS_SERVER}/{ACTION_REDIS_DB}"
    target_redis.cache_clear()
    keys = RedisKeys(
        redis.Redis.from_url(settings.TARGET_REDIS_URL, decode_responses=True)
    )
    yield keys
    keys.delete_created()
    keys.client.close()
    target_redis.cache_clear()
