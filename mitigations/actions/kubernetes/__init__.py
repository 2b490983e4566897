"""Actions on Kubernetes objects, through the client that clients.py configures.

Importing this package registers scale_replicas and scale_horizontally,
restart_high_memory_pods, rollback_deployment, activate_circuit_breaker and
enhanced_logging. scale_db_instances is not here: it is a configured step.
"""

from mitigations.actions.kubernetes import (  # noqa: F401
    pods,
    rollback,
    scaling,
    settings_patch,
)
from mitigations.actions.kubernetes.scaling import planned_replicas

__all__ = ["planned_replicas"]
