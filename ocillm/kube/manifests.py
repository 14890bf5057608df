"""The objects ``ocillm kube generate`` prints: Deployment, Service, and optionally a
HorizontalPodAutoscaler and a PodDisruptionBudget, as plain dicts.

Paths inside the pod (the image has ``ocillm`` on PATH and runs as any non-root user)::

    /var/lib/ocillm                 OCILLM_HOME: an emptyDir, the daemon's own state
    /var/lib/ocillm/models/model-N  image volume N: the modelcar's root, so its OCI layout is
                                    .../model-N/models, what ``serve --models`` reads
    /var/lib/ocillm/store           with --init-container: an emptyDir that init containers
                                    ``ocillm pull`` into, mounted read-only in the server
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ocillm import __version__
from ocillm.errors import UsageError
from ocillm.image.modelcar import MODELS_DIR
from ocillm.kube.models import ModelSpec

#: The server image the manifests run unless ``--image`` names another (docs/kubernetes.md).
DEFAULT_IMAGE = f"ghcr.io/ocillm/ocillm:{__version__}"
DEFAULT_PORT = 11434
#: Memory for the daemon and a spare runner process, on top of the models' estimate.
SERVER_OVERHEAD = 512 << 20

HOME = "/var/lib/ocillm"
VOLUMES_ROOT = f"{HOME}/models"
STORE = f"{HOME}/store"
POLICY_DIR = "/etc/ocillm/policy"
REGISTRY_AUTH_DIR = "/etc/ocillm/registry"
NON_ROOT = 65532
_DNS_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")


@dataclass(frozen=True)
class KubeOptions:
    name: str
    namespace: str | None = None
    replicas: int = 1
    image: str = DEFAULT_IMAGE
    port: int = DEFAULT_PORT
    gpus: int = 0
    gpu_resource: str = "nvidia.com/gpu"
    cpu: str = "1"
    memory: int | None = None  # bytes; overrides the estimate
    context_length: int = 4096
    num_parallel: int = 1
    api_key_secret: str | None = None  # NAME or NAME:KEY
    pull_secret: str | None = None
    init_container: bool = False
    policy_configmap: str | None = None
    registry_mirrors: str | None = None
    hpa_max: int = 0
    hpa_cpu: int = 80
    pdb_min_available: int | None = None
    labels: dict[str, str] = field(default_factory=dict)

    def check(self) -> None:
        if not _DNS_LABEL.match(self.name) or len(self.name) > 63:
            raise UsageError(
                f"--name {self.name!r}: expected a DNS label (lowercase letters, digits and "
                "'-', starting with a letter, at most 63 characters)"
            )
        if self.replicas < 1:
            raise UsageError("--replicas must be at least 1")
        if not 0 < self.port < 65536:
            raise UsageError(f"--port {self.port}: expected 1-65535")
        if self.gpus < 0:
            raise UsageError("--gpus must be 0 or more")
        if self.hpa_max and self.hpa_max < self.replicas:
            raise UsageError(f"--hpa-max {self.hpa_max} is below --replicas {self.replicas}")
        if not 0 < self.hpa_cpu <= 1000:
            raise UsageError(f"--hpa-cpu {self.hpa_cpu}: expected a percentage, 1-1000")
        if self.pdb_min_available is not None and not (0 <= self.pdb_min_available < self.replicas):
            raise UsageError(
                f"--pdb-min-available {self.pdb_min_available}: expected 0 to "
                f"--replicas - 1 ({self.replicas - 1}); more would block every node drain"
            )
        if self.policy_configmap and not self.init_container:
            raise UsageError(
                "--policy-configmap needs --init-container: an image volume carries no "
                "signatures for serve to check (verify it at admission, docs/kubernetes.md)"
            )
        if self.registry_mirrors and not self.init_container:
            raise UsageError(
                "--registry-mirrors needs --init-container (image volumes are pulled by the "
                "node's container runtime, whose mirrors are node configuration)"
            )


def mebibytes(n: int) -> str:
    return f"{math.ceil(n / (1 << 20))}Mi"


def memory_request(models: Sequence[ModelSpec], options: KubeOptions) -> int:
    """``--memory``, else the daemon's overhead plus every model's estimate (all loaded)."""
    if options.memory is not None:
        return options.memory
    unknown = [m.reference for m in models if m.memory is None]
    if unknown:
        raise UsageError(
            f"{unknown[0]}: not in the local store, so its memory cannot be estimated; "
            "pull it first or give --memory SIZE"
        )
    return SERVER_OVERHEAD + sum(m.memory or 0 for m in models)


def generate(models: Sequence[ModelSpec], options: KubeOptions) -> list[dict[str, Any]]:
    """The objects, in the order ``kubectl apply`` should create them."""
    if not models:
        raise UsageError("name at least one model")
    options.check()
    memory = memory_request(models, options)
    objects = [_deployment(models, options, memory), _service(options)]
    if options.hpa_max:
        objects.append(_hpa(options))
    if options.pdb_min_available is not None:
        objects.append(_pdb(options))
    return objects


def _labels(options: KubeOptions) -> dict[str, str]:
    return {"app.kubernetes.io/name": "ocillm", "app.kubernetes.io/instance": options.name}


def _metadata(options: KubeOptions, **extra: Any) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": options.name}
    if options.namespace:
        meta["namespace"] = options.namespace
    meta["labels"] = {
        **_labels(options),
        "app.kubernetes.io/component": "server",
        "app.kubernetes.io/managed-by": "ocillm",
        **options.labels,
    }
    meta.update(extra)
    return meta


def _secret_ref(text: str) -> dict[str, str]:
    name, _, key = text.partition(":")
    return {"name": name, "key": key or "api-key"}


def _deployment(models: Sequence[ModelSpec], options: KubeOptions, memory: int) -> dict[str, Any]:
    env: list[dict[str, Any]] = [
        {"name": "OCILLM_HOST", "value": f"0.0.0.0:{options.port}"},
        {"name": "OCILLM_HOME", "value": HOME},
        {"name": "OCILLM_CONTEXT_LENGTH", "value": str(options.context_length)},
        {"name": "OCILLM_NUM_PARALLEL", "value": str(options.num_parallel)},
        {"name": "OCILLM_MAX_LOADED_MODELS", "value": str(len(models))},
    ]
    if options.api_key_secret:
        env.append(
            {
                "name": "OCILLM_API_KEY",
                "valueFrom": {"secretKeyRef": _secret_ref(options.api_key_secret)},
            }
        )
    mounts: list[dict[str, Any]] = [
        {"name": "home", "mountPath": HOME},
        {"name": "tmp", "mountPath": "/tmp"},
    ]
    volumes: list[dict[str, Any]] = [
        {"name": "home", "emptyDir": {}},
        {"name": "tmp", "emptyDir": {}},
    ]
    args = ["serve", "--read-only"]
    init: list[dict[str, Any]] = []
    if options.init_container:
        args += ["--models", STORE]
        mounts.append({"name": "store", "mountPath": STORE, "readOnly": True})
        store_volume: dict[str, Any] = {}
        sizes = [m.size for m in models]
        if all(s is not None for s in sizes):  # room for the blobs, plus a tenth for ingest
            store_volume["sizeLimit"] = mebibytes(sum(s or 0 for s in sizes) * 11 // 10)
        volumes.append({"name": "store", "emptyDir": store_volume})
        init = _init_containers(models, options)
    else:
        for i, model in enumerate(models):
            path = f"{VOLUMES_ROOT}/model-{i}"
            args += ["--models", f"{path}/{MODELS_DIR}"]
            mounts.append({"name": f"model-{i}", "mountPath": path, "readOnly": True})
            volumes.append(
                {
                    "name": f"model-{i}",
                    "image": {"reference": model.pinned, "pullPolicy": "IfNotPresent"},
                }
            )
    if options.policy_configmap:
        env.append({"name": "OCILLM_POLICY", "value": f"{POLICY_DIR}/policy.json"})
        mounts.append({"name": "policy", "mountPath": POLICY_DIR, "readOnly": True})
        volumes.append({"name": "policy", "configMap": {"name": options.policy_configmap}})
    if options.pull_secret and options.init_container:
        volumes.append(
            {
                "name": "registry-auth",
                "secret": {
                    "secretName": options.pull_secret,
                    "items": [{"key": ".dockerconfigjson", "path": "config.json"}],
                },
            }
        )
    resources: dict[str, Any] = {
        "requests": {"cpu": options.cpu, "memory": mebibytes(memory)},
        "limits": {"memory": mebibytes(memory)},
    }
    if options.gpus:
        resources["limits"][options.gpu_resource] = options.gpus
    container: dict[str, Any] = {
        "name": "ocillm",
        "image": options.image,
        "command": ["ocillm"],
        "args": args,
        "env": env,
        "ports": [{"name": "http", "containerPort": options.port, "protocol": "TCP"}],
        "readinessProbe": _probe("/", options, period=5),
        "livenessProbe": _probe("/api/version", options, period=20),
        "resources": resources,
        "securityContext": _container_security(),
        "volumeMounts": mounts,
    }
    pod: dict[str, Any] = {
        "automountServiceAccountToken": False,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": NON_ROOT,
            "runAsGroup": NON_ROOT,
            "fsGroup": NON_ROOT,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
    }
    if options.pull_secret:
        pod["imagePullSecrets"] = [{"name": options.pull_secret}]
    if init:
        pod["initContainers"] = init
    pod["containers"] = [container]
    if options.gpus:
        pod["tolerations"] = [
            {"key": options.gpu_resource, "operator": "Exists", "effect": "NoSchedule"}
        ]
    pod["volumes"] = volumes
    annotations = {
        "ocillm.io/models": ",".join(m.pinned for m in models),
        "ocillm.io/memory-request": str(memory),
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _metadata(options, annotations=annotations),
        "spec": {
            "replicas": options.replicas,
            "selector": {"matchLabels": _labels(options)},
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
            },
            "template": {
                "metadata": {"labels": _labels(options), "annotations": annotations},
                "spec": pod,
            },
        },
    }


def _probe(path: str, options: KubeOptions, *, period: int) -> dict[str, Any]:
    timing = {"periodSeconds": period, "timeoutSeconds": 5, "failureThreshold": 3}
    if not options.api_key_secret:
        return {"httpGet": {"path": path, "port": "http"}, **timing}
    # Every route wants the key when OCILLM_API_KEY is set, and an httpGet probe cannot read a
    # Secret: the probe runs in the container, where the key is in the environment.
    script = (
        "import os,sys,urllib.request as u;"
        f"r=u.Request('http://127.0.0.1:{options.port}{path}',"
        "headers={'Authorization':'Bearer '+os.environ['OCILLM_API_KEY']});"
        "sys.exit(0 if u.urlopen(r,timeout=4).status==200 else 1)"
    )
    return {"exec": {"command": ["python3", "-c", script]}, **timing}


def _container_security() -> dict[str, Any]:
    return {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }


def _init_containers(models: Sequence[ModelSpec], options: KubeOptions) -> list[dict[str, Any]]:
    env: list[dict[str, Any]] = [
        {"name": "OCILLM_HOME", "value": HOME},
        {"name": "OCILLM_MODELS", "value": STORE},
    ]
    mounts: list[dict[str, Any]] = [
        {"name": "home", "mountPath": HOME},
        {"name": "store", "mountPath": STORE},
        {"name": "tmp", "mountPath": "/tmp"},
    ]
    if options.pull_secret:
        env.append({"name": "DOCKER_CONFIG", "value": REGISTRY_AUTH_DIR})
        mounts.append({"name": "registry-auth", "mountPath": REGISTRY_AUTH_DIR, "readOnly": True})
    if options.registry_mirrors:
        env.append({"name": "OCILLM_REGISTRY_MIRRORS", "value": options.registry_mirrors})
    if options.policy_configmap:
        env.append({"name": "OCILLM_POLICY", "value": f"{POLICY_DIR}/policy.json"})
        mounts.append({"name": "policy", "mountPath": POLICY_DIR, "readOnly": True})
    out: list[dict[str, Any]] = []
    for i, model in enumerate(models):
        pull = ["pull", "--quiet"]
        if options.policy_configmap:
            pull.append("--with-referrers")  # the signatures, for serve's check before a load
        steps = [("pull", [*pull, model.pinned])]
        if model.reference.tag:  # the name clients ask for
            steps.append(
                ("tag", ["tag", model.pinned, str(model.reference.with_tag(model.reference.tag))])
            )
        for verb, args in steps:
            out.append(
                {
                    "name": f"{verb}-{i}",
                    "image": options.image,
                    "command": ["ocillm"],
                    "args": args,
                    "env": env,
                    "resources": {"requests": {"cpu": "250m", "memory": "256Mi"}},
                    "securityContext": _container_security(),
                    "volumeMounts": mounts,
                }
            )
    return out


def _service(options: KubeOptions) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _metadata(options),
        "spec": {
            "type": "ClusterIP",
            "selector": _labels(options),
            "ports": [
                {"name": "http", "port": options.port, "targetPort": "http", "protocol": "TCP"}
            ],
        },
    }


def _hpa(options: KubeOptions) -> dict[str, Any]:
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": _metadata(options),
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": options.name},
            "minReplicas": options.replicas,
            "maxReplicas": options.hpa_max,
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {
                        "name": "cpu",
                        "target": {"type": "Utilization", "averageUtilization": options.hpa_cpu},
                    },
                }
            ],
        },
    }


def _pdb(options: KubeOptions) -> dict[str, Any]:
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": _metadata(options),
        "spec": {
            "minAvailable": options.pdb_min_available,
            "selector": {"matchLabels": _labels(options)},
        },
    }
