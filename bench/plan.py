"""How much one benchmark run measures."""

from dataclasses import dataclass


@dataclass(frozen=True)
class Plan:
    """How much to run: sizes, cycles per case, and the extra cases."""

    sizes: tuple[int, ...] = (100, 1000, 5000)
    cycles: int = 8
    rule_evaluations: int = 11
    fanouts: tuple[int, ...] = (1, 10, 100, 1000)
    variants: tuple[tuple[int, int], ...] = (
        (100, 4),
        (100, 1),
        (100, 2),
        (250, 4),
        (500, 2),
        (1000, 1),
    )
    profile_cycles: int = 3
    breach_share: float = 0.1
    breach_watchers: int = 1000

    def rule_interval_seconds(self, rules: int) -> float:
        """Return a rule group interval long enough for the group's evaluation."""
        return 1.0 if rules <= 1000 else 2.0

    @classmethod
    def quick(cls) -> "Plan":
        return cls(
            sizes=(100, 1000),
            cycles=4,
            rule_evaluations=5,
            fanouts=(1, 100),
            variants=((100, 4), (500, 2)),
            profile_cycles=2,
        )
