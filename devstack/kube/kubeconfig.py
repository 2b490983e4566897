"""A kubeconfig file that points the ``kubernetes`` client at the stand-in."""

import os
from pathlib import Path

import yaml

CONTEXT_NAME = "bastion-standin"


def kubeconfig(server_url: str, token: str | None, namespace: str = "default") -> dict:
    """Build a kubeconfig with one cluster, one user and a current context."""
    user = {"token": token} if token else {}
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "preferences": {},
        "clusters": [{"name": CONTEXT_NAME, "cluster": {"server": server_url}}],
        "users": [{"name": CONTEXT_NAME, "user": user}],
        "contexts": [
            {
                "name": CONTEXT_NAME,
                "context": {
                    "cluster": CONTEXT_NAME,
                    "user": CONTEXT_NAME,
                    "namespace": namespace,
                },
            }
        ],
        "current-context": CONTEXT_NAME,
    }


def write_kubeconfig(
    path: Path, server_url: str, token: str | None, namespace: str = "default"
) -> Path:
    """Write the kubeconfig readable only by its owner, since it contains the token."""
    path.parent.mkdir(parents=True, exist_ok=True)
    text = yaml.safe_dump(kubeconfig(server_url, token, namespace), sort_keys=False)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as stream:
        stream.write(text)
    return path
