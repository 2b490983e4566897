from django.db import models


class Risk(models.TextChoices):
    SAFE = "safe", "safe"
    DISRUPTIVE = "disruptive", "disruptive"
    DESTRUCTIVE = "destructive", "destructive"


class ApprovalPolicy(models.TextChoices):
    DEFAULT = "default", "by risk (destructive steps wait for approval)"
    ALWAYS = "always", "always wait for approval"
    NEVER = "never", "never wait for approval"


class AttemptStatus(models.TextChoices):
    RUNNING = "running", "running steps"
    VERIFYING = "verifying", "waiting to verify recovery"
    MITIGATED = "mitigated", "mitigated: the metric recovered"
    FAILED = "failed", "failed"
    STOPPED = "stopped", "stopped before it finished"


class RunStatus(models.TextChoices):
    QUEUED = "queued", "queued"
    WAITING_APPROVAL = "waiting_approval", "waiting for approval"
    APPROVED = "approved", "approved, queued"
    RUNNING = "running", "running"
    SUCCEEDED = "succeeded", "succeeded"
    FAILED = "failed", "failed"
    DRY_RUN = "dry_run", "dry run: recorded, not executed"
    SKIPPED = "skipped", "skipped"
    BLOCKED = "blocked", "blocked by a guardrail"
    REJECTED = "rejected", "rejected by a person"
    LOST = "lost", "outcome unknown: the worker was lost"


# A run in one of these states is finished and is never claimed again.
FINISHED_STATUSES = frozenset(
    {
        RunStatus.SUCCEEDED,
        RunStatus.FAILED,
        RunStatus.DRY_RUN,
        RunStatus.SKIPPED,
        RunStatus.BLOCKED,
        RunStatus.REJECTED,
        RunStatus.LOST,
    }
)


class TemporaryKind(models.TextChoices):
    IP_BLOCK = "ip_block", "IP block"
    RATE_LIMIT = "rate_limit", "lowered rate limit"
