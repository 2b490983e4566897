"""A local stand-in for the Kubernetes API server, for the official client.

``KubeStandin`` serves Deployments (with the scale and status subresources),
ReplicaSets, Pods, ConfigMaps and HorizontalPodAutoscalers over plain HTTP on
127.0.0.1, runs a small deployment controller, and takes injected faults.
``python -m devstack.kube`` runs it and writes a kubeconfig for it.
"""

from devstack.kube.server import KubeStandin

__all__ = ["KubeStandin"]
