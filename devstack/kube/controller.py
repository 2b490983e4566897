"""The control loop of the stand-in: rollouts, pod readiness and HPAs.

It follows what kube-controller-manager does, at a smaller scale:

- each distinct pod template of a Deployment gets its own ReplicaSet (see
  ``replicasets.sync_replica_sets``);
- pods of the current ReplicaSet are created at once and become ready one
  after another, one per ready delay. Surplus pods are deleted one per ready
  delay, and pods of older ReplicaSets as soon as enough new pods are ready;
- a pod deleted through the API is replaced by a new one, ready after the
  delay;
- NOTE: spec.strategy, spec.paused and revisionHistoryLimit are ignored, so
  every rollout creates all new pods at once and old ReplicaSets are kept;
- a HorizontalPodAutoscaler keeps its target's replicas between its minimum
  and maximum. NOTE: it reads no metrics, so it never scales on load.
"""

import logging
import math
import threading
import time
from typing import Any

from devstack.kube.replicasets import (
    deployment_status,
    desired_replicas,
    is_ready,
    new_pod,
    pod_status,
    pods_of,
    replica_set_status,
    replica_sets_of,
    sync_replica_sets,
)
from devstack.kube.store import (
    DEPLOYMENTS,
    HORIZONTAL_POD_AUTOSCALERS,
    PODS,
    REPLICA_SETS,
    ApiError,
    Store,
    now_timestamp,
)

logger = logging.getLogger(__name__)

# A pass runs after every write to the store and when a pod's ready or removal
# time comes, but at most every TICK_SECONDS. Without either it runs every
# IDLE_SECONDS, so a change that writes nothing (a stall lifted) takes effect.
TICK_SECONDS = 0.02
IDLE_SECONDS = 0.25
DeploymentKey = tuple[str, str]


class Controller:
    """Moves every Deployment's pods and status toward its spec, on a thread."""

    def __init__(self, store: Store, ready_delay_seconds: float = 1.0) -> None:
        self.store = store
        self.ready_delay_seconds = ready_delay_seconds
        self.deployment_delays: dict[DeploymentKey, float] = {}
        self.stalled: set[DeploymentKey] = set()
        self._ready_at: dict[str, float] = {}
        self._next_ready_slot: dict[str, float] = {}
        self._next_removal: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._run, name="kube-standin-controller", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self.store.changed.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def delay_for(self, namespace: str, name: str) -> float:
        return self.deployment_delays.get((namespace, name), self.ready_delay_seconds)

    def forget(self) -> None:
        """Drop the pod schedules, after a reset or once a seed has settled."""
        self._ready_at.clear()
        self._next_ready_slot.clear()
        self._next_removal.clear()

    def settle(self, max_rounds: int = 100) -> None:
        """Bring every Deployment to its spec at once, ignoring the delays.

        Seeded objects start this way, so the demo cluster begins healthy.
        """
        with self.store.lock:
            for _ in range(max_rounds):
                before = self.store.resource_version
                self.reconcile(now=math.inf)
                if self.store.resource_version == before:
                    break
            self.forget()

    def _run(self) -> None:
        while not self._stop.is_set():
            # Cleared before the pass reads, so a write during it wakes the next.
            self.store.changed.clear()
            try:
                self.reconcile(time.monotonic())
            except Exception:
                # One bad object must not stop the loop for all the others.
                logger.exception("Stand-in controller pass failed; retrying")
            self.store.changed.wait(self.seconds_to_next_pass(time.monotonic()))

    def seconds_to_next_pass(self, now: float) -> float:
        """Return how long the loop may sleep before a pod is due to change.

        Times already past belong to stalled Deployments, which wait until the
        stall is cleared, so only future ones count.
        """
        due = [
            moment
            for moment in (*self._ready_at.values(), *self._next_removal.values())
            if moment > now
        ]
        if not due:
            return IDLE_SECONDS
        return min(IDLE_SECONDS, max(TICK_SECONDS, min(due) - now))

    def reconcile(self, now: float) -> None:
        with self.store.lock:
            for deployment in self.store.list_objects(DEPLOYMENTS):
                self.reconcile_deployment(deployment, now)
            for autoscaler in self.store.list_objects(HORIZONTAL_POD_AUTOSCALERS):
                self.reconcile_autoscaler(autoscaler)
            self.collect_garbage()

    def reconcile_deployment(self, deployment: dict[str, Any], now: float) -> None:
        deployment, current = sync_replica_sets(self.store, deployment)
        current_uid = current["metadata"]["uid"]
        replica_sets = replica_sets_of(self.store, deployment)
        old_sets = [rs for rs in replica_sets if rs["metadata"]["uid"] != current_uid]
        key = (deployment["metadata"]["namespace"], deployment["metadata"]["name"])
        delay = self.delay_for(*key)

        for replica_set in replica_sets:
            self.mark_ready(pods_of(self.store, replica_set), key, now)
        self.scale_current(deployment, current, delay, now)
        current_pods = pods_of(self.store, current)
        ready_current = sum(1 for pod in current_pods if is_ready(pod))
        self.retire_old_pods(old_sets, desired_replicas(deployment) - ready_current)

        all_pods = list(current_pods)
        for replica_set in replica_sets:
            pods = pods_of(self.store, replica_set)
            self.store.write_status(
                REPLICA_SETS, replica_set, replica_set_status(replica_set, pods)
            )
            if replica_set["metadata"]["uid"] != current_uid:
                all_pods += pods
        status = deployment_status(deployment, current, all_pods, len(current_pods))
        self.store.write_status(DEPLOYMENTS, deployment, status)

    def mark_ready(
        self, pods: list[dict[str, Any]], key: DeploymentKey, now: float
    ) -> None:
        if key in self.stalled:
            return
        for pod in pods:
            uid = pod["metadata"]["uid"]
            if is_ready(pod) or self._ready_at.setdefault(uid, now) > now:
                continue
            self.store.write_status(PODS, pod, pod_status(pod["spec"], ready=True))
            self._ready_at.pop(uid, None)

    def scale_current(
        self,
        deployment: dict[str, Any],
        current: dict[str, Any],
        delay: float,
        now: float,
    ) -> None:
        uid = deployment["metadata"]["uid"]
        pods = pods_of(self.store, current)
        missing = desired_replicas(deployment) - len(pods)
        for _ in range(missing):
            pod = self.store.create(
                PODS,
                current["metadata"]["namespace"],
                new_pod(current),
                keep_status=True,
            )
            self._ready_at[pod["metadata"]["uid"]] = self.next_ready_slot(
                uid, delay, now
            )
        if missing >= 0:
            self._next_removal.pop(uid, None)
            return
        due = self._next_removal.setdefault(uid, now + delay)
        if now >= due:
            # Like the ReplicaSet controller: a pod not yet ready goes first,
            # then the newest.
            pods.sort(
                key=lambda pod: (is_ready(pod), pod["metadata"]["creationTimestamp"])
            )
            self.delete_pod(pods[0])
            self._next_removal[uid] = now + delay

    def next_ready_slot(self, deployment_uid: str, delay: float, now: float) -> float:
        """Return when a new pod becomes ready: one delay after the one before."""
        slot = max(now, self._next_ready_slot.get(deployment_uid, 0.0)) + delay
        self._next_ready_slot[deployment_uid] = slot
        return slot

    def retire_old_pods(self, old_sets: list[dict[str, Any]], allowed: int) -> None:
        old_pods = [
            pod for replica_set in old_sets for pod in pods_of(self.store, replica_set)
        ]
        old_pods.sort(
            key=lambda pod: (is_ready(pod), pod["metadata"]["creationTimestamp"])
        )
        for pod in old_pods[: max(0, len(old_pods) - max(0, allowed))]:
            self.delete_pod(pod)

    def delete_pod(self, pod: dict[str, Any]) -> None:
        metadata = pod["metadata"]
        self.store.delete(PODS, metadata["namespace"], metadata["name"])
        self._ready_at.pop(metadata["uid"], None)

    def reconcile_autoscaler(self, autoscaler: dict[str, Any]) -> None:
        spec = autoscaler["spec"]
        target_ref = spec["scaleTargetRef"]
        namespace = autoscaler["metadata"]["namespace"]
        target = None
        if target_ref.get("kind") == "Deployment":
            target = self.store.find(DEPLOYMENTS, namespace, target_ref["name"])
        if target is None:
            missing = {"currentReplicas": 0, "desiredReplicas": 0}
            self.store.write_status(HORIZONTAL_POD_AUTOSCALERS, autoscaler, missing)
            return
        replicas = desired_replicas(target)
        bounded = min(max(replicas, spec.get("minReplicas") or 1), spec["maxReplicas"])
        status: dict[str, Any] = dict(autoscaler.get("status") or {})
        if bounded != replicas:
            target["spec"]["replicas"] = bounded
            self.store.update(DEPLOYMENTS, namespace, target_ref["name"], target)
            status["lastScaleTime"] = now_timestamp()
            logger.info(
                "HPA %s/%s scaled %s from %d to %d replicas",
                namespace,
                autoscaler["metadata"]["name"],
                target_ref["name"],
                replicas,
                bounded,
            )
        status["currentReplicas"] = target.get("status", {}).get("replicas", 0)
        status["desiredReplicas"] = bounded
        self.store.write_status(HORIZONTAL_POD_AUTOSCALERS, autoscaler, status)

    def collect_garbage(self) -> None:
        """Delete ReplicaSets and pods whose owner is gone.

        Kubernetes' garbage collector does the same for background deletion.
        """
        owners = {
            obj["metadata"]["uid"]
            for resource in (DEPLOYMENTS, REPLICA_SETS)
            for obj in self.store.list_objects(resource)
        }
        for resource in (REPLICA_SETS, PODS):
            for obj in self.store.list_objects(resource):
                references = obj["metadata"].get("ownerReferences") or []
                if references and not any(
                    ref.get("uid") in owners for ref in references
                ):
                    try:
                        self.store.delete(
                            resource,
                            obj["metadata"]["namespace"],
                            obj["metadata"]["name"],
                        )
                    except ApiError:
                        continue
