from django.db import models


class MitigationStep(models.Model):
    """One ordered step of a watcher's mitigation chain."""

    watcher = models.ForeignKey(
        "watchers.Watcher", on_delete=models.CASCADE, related_name="steps"
    )
    position = models.PositiveSmallIntegerField()
    action = models.CharField(max_length=100)
    parameters = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["watcher", "position"]
        constraints = [
            models.UniqueConstraint(
                fields=["watcher", "position"], name="one_step_per_position"
            )
        ]

    def __str__(self) -> str:
        return f"{self.watcher_id}#{self.position} {self.action}"
