"""``ocillm kube generate``: Kubernetes manifests that run ``serve --read-only`` (docs/kubernetes.md)."""

from __future__ import annotations

import json
import re

import typer

from ocillm.cli.app import app
from ocillm.cli.common import open_store, parse_labels
from ocillm.errors import UsageError
from ocillm.kube import DEFAULT_IMAGE, DEFAULT_PORT, KubeOptions, dump_all, generate, resolve_model

kube_app = typer.Typer(
    help="Kubernetes manifests for ocillm serve (no cluster needed).", no_args_is_help=True
)
app.add_typer(kube_app, name="kube")


def default_name(repository: str) -> str:
    """A DNS label from the repository's last component (``acme/support-bot`` -> ``support-bot``)."""
    name = re.sub(r"[^a-z0-9-]+", "-", repository.rsplit("/", 1)[-1].lower()).strip("-")
    if not name or not name[0].isalpha():
        name = f"ocillm-{name}".rstrip("-")
    return name[:63].rstrip("-")


@kube_app.command("generate")
def kube_generate(
    ctx: typer.Context,
    references: list[str] = typer.Argument(
        ..., metavar="REF...", help="Models to serve: tags resolved in the local store, or @sha256."
    ),
    name: str | None = typer.Option(
        None, "--name", metavar="NAME", help="Name of every object (default: the first model's)."
    ),
    namespace: str | None = typer.Option(
        None, "--namespace", "-n", metavar="NS", help="metadata.namespace of every object."
    ),
    replicas: int = typer.Option(1, "--replicas", metavar="N", help="Server replicas."),
    image: str = typer.Option(
        DEFAULT_IMAGE, "--image", metavar="IMAGE", help="The ocillm server container image."
    ),
    port: int = typer.Option(DEFAULT_PORT, "--port", metavar="PORT", help="Port served."),
    gpus: int = typer.Option(0, "--gpus", metavar="N", help="GPUs per replica (resource limit)."),
    gpu_resource: str = typer.Option(
        "nvidia.com/gpu", "--gpu-resource", metavar="NAME", help="Extended resource for --gpus."
    ),
    cpu: str = typer.Option("1", "--cpu", metavar="QTY", help="CPU request per replica."),
    memory: str | None = typer.Option(
        None, "--memory", metavar="SIZE", help="Memory per replica instead of the estimate."
    ),
    context_length: int = typer.Option(
        4096, "--context-length", metavar="N", help="OCILLM_CONTEXT_LENGTH (sizes the estimate)."
    ),
    num_parallel: int = typer.Option(
        1, "--num-parallel", metavar="N", help="OCILLM_NUM_PARALLEL (sizes the estimate)."
    ),
    api_key_secret: str | None = typer.Option(
        None, "--api-key-secret", metavar="NAME[:KEY]", help="OCILLM_API_KEY from this Secret."
    ),
    pull_secret: str | None = typer.Option(
        None, "--pull-secret", metavar="NAME", help="dockerconfigjson Secret for the registry."
    ),
    init_container: bool = typer.Option(
        False, "--init-container", help="ocillm pull into an emptyDir instead of image volumes."
    ),
    policy_configmap: str | None = typer.Option(
        None,
        "--policy-configmap",
        metavar="NAME",
        help="Trust policy ConfigMap (policy.json, keys) for the pull and serve.",
    ),
    registry_mirrors: str | None = typer.Option(
        None, "--registry-mirrors", metavar="MIRRORS", help="OCILLM_REGISTRY_MIRRORS for the pull."
    ),
    hpa_max: int = typer.Option(
        0, "--hpa-max", metavar="N", help="Add a HorizontalPodAutoscaler up to N replicas."
    ),
    hpa_cpu: int = typer.Option(80, "--hpa-cpu", metavar="PERCENT", help="Its CPU target."),
    pdb_min_available: int | None = typer.Option(
        None, "--pdb-min-available", metavar="N", help="Add a PodDisruptionBudget."
    ),
    label: list[str] = typer.Option(
        [], "--label", metavar="KEY=VALUE", help="Extra label on every object (repeatable)."
    ),
    output: str = typer.Option("yaml", "--output", "-o", metavar="FORMAT", help="yaml or json."),
) -> None:
    """Print a Deployment and Service (and optionally an HPA and a PDB) serving REF... read-only."""
    from ocillm.cli.registry_cmd import parse_size

    if output not in ("yaml", "json"):
        raise UsageError(f"--output {output!r}: expected yaml or json")
    if context_length < 4 or num_parallel < 1:
        raise UsageError("--context-length must be at least 4 and --num-parallel at least 1")
    store = open_store(ctx)
    models = [
        resolve_model(
            store,
            text,
            num_ctx=context_length,
            num_parallel=num_parallel,
            need_modelcar=not init_container,
        )
        for text in references
    ]
    options = KubeOptions(
        name=name or default_name(models[0].reference.repository),
        namespace=namespace,
        replicas=replicas,
        image=image,
        port=port,
        gpus=gpus,
        gpu_resource=gpu_resource,
        cpu=cpu,
        memory=parse_size(memory, "--memory") if memory else None,
        context_length=context_length,
        num_parallel=num_parallel,
        api_key_secret=api_key_secret,
        pull_secret=pull_secret,
        init_container=init_container,
        policy_configmap=policy_configmap,
        registry_mirrors=registry_mirrors,
        hpa_max=hpa_max,
        hpa_cpu=hpa_cpu,
        pdb_min_available=pdb_min_available,
        labels=parse_labels(label),
    )
    objects = generate(models, options)
    if output == "json":
        typer.echo(json.dumps({"apiVersion": "v1", "kind": "List", "items": objects}, indent=2))
    else:
        typer.echo(dump_all(objects), nl=False)
