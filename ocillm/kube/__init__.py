"""Kubernetes manifests for ``ocillm serve --read-only`` (``ocillm kube generate``).

``models`` pins each reference to a digest from the local store and sizes it with the
scheduler's own memory estimate; ``manifests`` turns those into a Deployment, a Service and
optionally a HorizontalPodAutoscaler and a PodDisruptionBudget; ``yamlout`` writes them as YAML
without a YAML library (the base install has none). Nothing here talks to a cluster.
"""

from __future__ import annotations

from ocillm.kube.manifests import DEFAULT_IMAGE, DEFAULT_PORT, KubeOptions, generate
from ocillm.kube.models import ModelSpec, resolve_model
from ocillm.kube.yamlout import dump_all

__all__ = [
    "DEFAULT_IMAGE",
    "DEFAULT_PORT",
    "KubeOptions",
    "ModelSpec",
    "dump_all",
    "generate",
    "resolve_model",
]
