"""``ocillm kube generate`` and the shipped manifests under deploy/: every one validated with
kubernetes-validate's offline schemas for Kubernetes 1.33-1.36 (the overlays rendered with
``kubectl kustomize`` first), their content checked, and the generated pod run here as a
kubelet would run it: the modelcar unpacked where the image volume mounts it (umoci), or the
init containers' ``ocillm pull`` from a real registry, then the server container's own command,
environment and probes. No cluster is involved."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import kubernetes_validate.utils as kv
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from procutil import free_port  # registry-fixtures/procutil.py (on sys.path via conftest)
from test_modelcar import need  # fails, never skips, when a Debian tool is missing

from ocillm.gguf import read_gguf_info
from ocillm.gpu.estimate import EstimateOptions, ModelShape, ProjectorShape, estimate
from ocillm.kube.manifests import SERVER_OVERHEAD, mebibytes
from ocillm.kube.yamlout import dump, dump_all
from ocillm.oci import mediatypes as mt

REPO_ROOT = Path(__file__).resolve().parent.parent
DEPLOY = REPO_ROOT / "deploy"
#: Kubernetes releases every manifest must validate against (kubernetes-validate >= 1.36 has
#: all four; its newest, 1.37, is checked too).
VERSIONS = ("1.33.0", "1.34.0", "1.35.0", "1.36.0", "1.37.0")
REF = "localhost:5000/acme/tiny:1"
KEY = "s3cret-key"


def validate(doc: dict[str, Any]) -> None:
    for version in VERSIONS:
        kv.validate(doc, version, strict=True)


def test_kubernetes_validate_has_every_version_and_catches_a_typo() -> None:
    assert set(VERSIONS) <= set(kv.all_versions())
    bad = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "x"}, "spec": {"portz": []}}
    with pytest.raises(kv.ValidationError):
        validate(bad)


# -- the YAML writer -----------------------------------------------------------------------

_text = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12)
_scalars = st.none() | st.booleans() | st.integers(-(2**40), 2**40) | _text
_data = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_text, inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(_text, _data, max_size=5))
def test_yaml_writer_round_trips_through_pyyaml(value: dict[str, Any]) -> None:
    assert yaml.safe_load(dump(value)) == value


@pytest.mark.parametrize(
    "text",
    [
        "yes",
        "No",
        "on",
        "null",
        "1.5",
        "0x1F",
        "1:20",
        "- a",
        "#x",
        "a: b",
        "~",
        "",
        "*a",
        "A\n",
        "\x85",
    ],
)
def test_yaml_writer_quotes_what_a_reader_would_misread(text: str) -> None:
    assert yaml.safe_load(dump({"k": text})) == {"k": text}


# -- generate ------------------------------------------------------------------------------


@pytest.fixture
def models(cli: Any, ocillm_home: Path, tmp_path: Path, tiny_gguf: Path) -> Path:
    """The store with REF as a modelcar (num_ctx 2048 in the image) and plain:1 without one."""
    shutil.copy(tiny_gguf, tmp_path / "tiny.gguf")
    (tmp_path / "Modelfile").write_text("FROM ./tiny.gguf\nPARAMETER num_ctx 2048\n")
    assert cli("build", "-f", tmp_path / "Modelfile", "-t", REF, "--modelcar").returncode == 0
    (tmp_path / "Plain").write_text("FROM ./tiny.gguf\n")
    assert cli("build", "-f", tmp_path / "Plain", "-t", "plain:1").returncode == 0
    return ocillm_home / "models"


def generate(cli: Any, *args: str) -> dict[str, dict[str, Any]]:
    done = cli("kube", "generate", *args, "-o", "json")
    assert done.returncode == 0, done.stderr
    listed = json.loads(done.stdout)
    assert listed["kind"] == "List"
    return {item["kind"]: item for item in listed["items"]}


def store_digest(models: Path, ref: str) -> str:
    entries = json.loads((models / "index.json").read_text())["manifests"]
    return str(next(e for e in entries if e["annotations"][mt.ANN_REF_NAME] == ref)["digest"])


def tiny_estimate(tiny_gguf: Path, num_ctx: int, num_parallel: int = 1) -> int:
    shape = ModelShape.from_gguf_info(read_gguf_info(tiny_gguf))
    return estimate(shape, EstimateOptions(num_ctx=num_ctx, num_parallel=num_parallel)).cpu_size


FLAG_SETS = [
    [],
    ["--api-key-secret", "ocillm-key:token", "--namespace", "llm", "--replicas", "3"],
    ["--gpus", "2", "--hpa-max", "6", "--replicas", "2", "--pdb-min-available", "1"],
    ["--init-container", "--pull-secret", "regcred", "--policy-configmap", "trust"],
    ["--init-container", "--registry-mirrors", "localhost:5000=http://mirror:5000", "--gpus", "1"],
    ["--memory", "2G", "--cpu", "500m", "--port", "8080", "--label", "team=ml", "--name", "llm"],
]


@pytest.mark.parametrize("flags", FLAG_SETS, ids=lambda f: " ".join(f) or "defaults")
def test_generated_manifests_validate(cli: Any, models: Path, flags: list[str]) -> None:
    objects = (
        generate(cli, REF, "plain:1", *flags)
        if "--init-container" in flags
        else (generate(cli, REF, *flags))
    )
    for doc in objects.values():
        validate(doc)
    yaml_out = cli("kube", "generate", REF, *flags)
    assert yaml_out.returncode == 0, yaml_out.stderr
    docs = [d for d in yaml.safe_load_all(yaml_out.stdout) if d]
    assert {d["kind"] for d in docs} == set(objects)
    for doc in docs:
        validate(doc)


def test_image_volume_is_pinned_and_sized_by_the_estimate(
    cli: Any, models: Path, tiny_gguf: Path
) -> None:
    objects = generate(cli, REF, "--api-key-secret", "ocillm-key")
    assert set(objects) == {"Deployment", "Service"}
    pod = objects["Deployment"]["spec"]["template"]["spec"]
    digest = store_digest(models, REF)
    (volume,) = [v for v in pod["volumes"] if "image" in v]
    assert volume["image"]["reference"] == f"localhost:5000/acme/tiny@{digest}"
    (server,) = pod["containers"]
    mount = next(m for m in server["volumeMounts"] if m["name"] == volume["name"])
    assert mount["readOnly"] is True
    # serve reads the modelcar's /models folder (an OCI layout) inside the mounted image.
    assert server["args"] == ["serve", "--read-only", "--models", mount["mountPath"] + "/models"]
    # The image's own num_ctx (2048) sizes the estimate, not the 4096 default.
    memory = SERVER_OVERHEAD + tiny_estimate(tiny_gguf, 2048)
    assert server["resources"]["requests"]["memory"] == mebibytes(memory)
    assert server["resources"]["limits"]["memory"] == mebibytes(memory)
    assert "nvidia.com/gpu" not in server["resources"]["limits"]
    env = {e["name"]: e for e in server["env"]}
    assert env["OCILLM_API_KEY"]["valueFrom"]["secretKeyRef"] == {
        "name": "ocillm-key",
        "key": "api-key",
    }
    assert "value" not in env["OCILLM_API_KEY"]
    # The key is in the pod only through the Secret; the probes send it from the environment.
    assert "'http://127.0.0.1:11434/'" in server["readinessProbe"]["exec"]["command"][-1]
    assert "'http://127.0.0.1:11434/api/version'" in server["livenessProbe"]["exec"]["command"][-1]
    service = objects["Service"]
    assert service["spec"]["selector"] == objects["Deployment"]["spec"]["selector"]["matchLabels"]


def test_probes_are_http_gets_without_a_key(cli: Any, models: Path) -> None:
    server = generate(cli, REF)["Deployment"]["spec"]["template"]["spec"]["containers"][0]
    assert server["readinessProbe"]["httpGet"] == {"path": "/", "port": "http"}
    assert server["livenessProbe"]["httpGet"] == {"path": "/api/version", "port": "http"}
    assert all(e["name"] != "OCILLM_API_KEY" for e in server["env"])


def test_memory_follows_slots_context_and_models(cli: Any, models: Path, tiny_gguf: Path) -> None:
    def request(*args: str) -> str:
        pod = generate(cli, *args)["Deployment"]["spec"]["template"]["spec"]
        return str(pod["containers"][0]["resources"]["requests"]["memory"])

    # plain:1 sets no num_ctx, so --context-length and --num-parallel size it.
    plain = request(
        "plain:1", "--init-container", "--context-length", "8192", "--num-parallel", "4"
    )
    assert plain == mebibytes(SERVER_OVERHEAD + tiny_estimate(tiny_gguf, 8192, 4))
    both = request(REF, "plain:1", "--init-container")
    expected = SERVER_OVERHEAD + tiny_estimate(tiny_gguf, 2048) + tiny_estimate(tiny_gguf, 4096)
    assert both == mebibytes(expected)
    assert request(REF, "--memory", "3G") == "3072Mi"


def test_a_vision_images_projector_is_in_its_memory(
    cli: Any, models: Path, tiny_gguf: Path, tiny_mmproj: Path, tmp_path: Path
) -> None:
    (tmp_path / "Vision").write_text(f"FROM {tiny_gguf}\nFROM {tiny_mmproj}\n")
    assert cli("build", "-f", tmp_path / "Vision", "-t", "vision:1").returncode == 0
    pod = generate(cli, "vision:1", "--init-container")["Deployment"]["spec"]["template"]["spec"]
    projector = ProjectorShape.from_gguf_info(read_gguf_info(tiny_mmproj)).total_bytes
    expected = SERVER_OVERHEAD + tiny_estimate(tiny_gguf, 4096) + projector
    assert pod["containers"][0]["resources"]["requests"]["memory"] == mebibytes(expected)


def test_gpus_hpa_and_pdb(cli: Any, models: Path) -> None:
    objects = generate(
        cli, REF, "--gpus", "2", "--replicas", "2", "--hpa-max", "5", "--pdb-min-available", "1"
    )
    pod = objects["Deployment"]["spec"]["template"]["spec"]
    assert pod["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == 2
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod[
        "tolerations"
    ]
    hpa = objects["HorizontalPodAutoscaler"]["spec"]
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (2, 5)
    assert hpa["scaleTargetRef"]["name"] == objects["Deployment"]["metadata"]["name"]
    assert objects["PodDisruptionBudget"]["spec"]["minAvailable"] == 1


def test_init_container_pulls_by_digest_into_an_empty_dir(cli: Any, models: Path) -> None:
    objects = generate(cli, REF, "plain:1", "--init-container", "--policy-configmap", "trust")
    pod = objects["Deployment"]["spec"]["template"]["spec"]
    assert not [v for v in pod["volumes"] if "image" in v]
    plain = store_digest(models, "registry.ollama.ai/library/plain:1")
    steps = [(c["name"], c["args"]) for c in pod["initContainers"]]
    assert steps[0] == (
        "pull-0",
        [
            "pull",
            "--quiet",
            "--with-referrers",
            f"localhost:5000/acme/tiny@{store_digest(models, REF)}",
        ],
    )
    assert steps[3] == (
        "tag-1",
        ["tag", f"registry.ollama.ai/library/plain@{plain}", "registry.ollama.ai/library/plain:1"],
    )
    store = next(v for v in pod["volumes"] if v["name"] == "store")
    assert "sizeLimit" in store["emptyDir"]
    server = pod["containers"][0]
    assert server["args"] == ["serve", "--read-only", "--models", "/var/lib/ocillm/store"]
    assert {"name": "store", "mountPath": "/var/lib/ocillm/store", "readOnly": True} in server[
        "volumeMounts"
    ]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["missing:1"], "not in the local store, so its digest is unknown"),
        (["plain:1"], "containerd cannot mount as an image volume"),
        ([f"localhost:5000/x@sha256:{'a' * 64}"], "its memory cannot be estimated"),
        ([REF, "--policy-configmap", "t"], "--policy-configmap needs --init-container"),
        ([REF, "--name", "Bad_Name"], "expected a DNS label"),
        ([REF, "--pdb-min-available", "1"], "would block every node drain"),
        ([REF, "--hpa-max", "1", "--replicas", "2"], "below --replicas"),
        ([REF, "-o", "toml"], "expected yaml or json"),
        ([REF, "--memory", "lots"], "--memory 'lots'"),
    ],
)
def test_refusals_are_one_line(cli: Any, models: Path, args: list[str], message: str) -> None:
    done = cli("kube", "generate", *args)
    assert done.returncode != 0
    assert message in done.stderr
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1


def test_a_digest_not_in_the_store_is_taken_as_given_with_memory(cli: Any, models: Path) -> None:
    pinned = f"localhost:5000/x@sha256:{'a' * 64}"
    pod = generate(cli, pinned, "--memory", "1G")["Deployment"]["spec"]["template"]["spec"]
    assert pod["volumes"][-1]["image"]["reference"] == pinned
    assert pod["containers"][0]["resources"]["requests"]["memory"] == "1024Mi"


# -- the pod, run here -------------------------------------------------------------------------


def local(value: Any, root: Path, port: int) -> Any:
    """A container field with the pod's paths under ``root`` and the port on loopback."""
    if isinstance(value, str):
        if value.startswith(("/var/lib/ocillm", "/tmp", "/etc/ocillm")):
            return str(root) + value
        if value.startswith("0.0.0.0:"):
            return f"127.0.0.1:{port}"
        return value.replace("127.0.0.1:11434", f"127.0.0.1:{port}")
    if isinstance(value, list):
        return [local(v, root, port) for v in value]
    if isinstance(value, dict):
        return {k: local(v, root, port) for k, v in value.items()}
    return value


def container_env(container: dict[str, Any], root: Path, port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OCILLM_")}
    env["PYTHONPATH"] = str(REPO_ROOT)
    for item in local(container.get("env", []), root, port):
        if "valueFrom" in item:
            assert item["valueFrom"]["secretKeyRef"]["name"] == "ocillm-key"
            env[item["name"]] = KEY
        else:
            env[item["name"]] = item["value"]
    return env


def argv(container: dict[str, Any], root: Path, port: int) -> list[str]:
    assert container["command"] == ["ocillm"]
    return [sys.executable, "-m", "ocillm", *local(container["args"], root, port)]


def make_dirs(root: Path, pod: dict[str, Any]) -> None:
    for container in [*pod.get("initContainers", []), *pod["containers"]]:
        for mount in container["volumeMounts"]:
            (root / mount["mountPath"].lstrip("/")).mkdir(parents=True, exist_ok=True)


@contextlib.contextmanager
def running(pod: dict[str, Any], root: Path) -> Iterator[tuple[int, dict[str, str]]]:
    """The server container, started with its own argv and environment; yields (port, env)."""
    (server,) = pod["containers"]
    port = free_port()
    env = container_env(server, root, port)
    log = open(root / "serve.log", "wb")  # noqa: SIM115 (closed below)
    proc = subprocess.Popen(argv(server, root, port), env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        yield port, env
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def probe(container: dict[str, Any], which: str, port: int, env: dict[str, str]) -> bool:
    spec = container[which]
    if "exec" in spec:
        command = local(spec["exec"]["command"], Path("/"), port)
        done = subprocess.run(command, env=env, capture_output=True, timeout=10)
        return done.returncode == 0
    url = f"http://127.0.0.1:{port}{spec['httpGet']['path']}"
    try:
        return httpx.get(url, timeout=5).status_code == 200
    except httpx.HTTPError:
        return False


def wait_ready(container: dict[str, Any], port: int, env: dict[str, str], root: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if probe(container, "readinessProbe", port, env):
            return
        time.sleep(0.3)
    pytest.fail(f"never ready: {(root / 'serve.log').read_text(errors='replace')[-2000:]}")


def make_read_only(path: Path) -> None:
    for p in sorted(path.rglob("*"), reverse=True):
        if not p.is_symlink():
            p.chmod(p.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
    path.chmod(0o555)


def test_the_generated_pod_serves_the_image_volume(cli: Any, models: Path, tmp_path: Path) -> None:
    need("skopeo")
    umoci = need("umoci")
    pod = generate(cli, REF, "--api-key-secret", "ocillm-key")["Deployment"]["spec"]["template"][
        "spec"
    ]
    root = tmp_path / "pod"
    make_dirs(root, pod)
    # What the kubelet mounts for the image volume: the runnable image's root filesystem.
    (volume,) = [v for v in pod["volumes"] if "image" in v]
    assert volume["image"]["reference"].endswith("@" + store_digest(models, REF))
    layout = tmp_path / "pulled"
    subprocess.run(["skopeo", "copy", f"oci:{models}:{REF}", f"oci:{layout}:car"], check=True)
    bundle = tmp_path / "bundle"
    subprocess.run(
        [umoci, "unpack", "--rootless", "--image", f"{layout}:car", str(bundle)],
        check=True,
        capture_output=True,
    )
    (server,) = pod["containers"]
    target = root / next(
        m["mountPath"] for m in server["volumeMounts"] if m["name"] == volume["name"]
    ).lstrip("/")
    target.rmdir()
    shutil.move(str(bundle / "rootfs"), target)
    make_read_only(target)
    with running(pod, root) as (port, env):
        wait_ready(server, port, env, root)
        assert probe(server, "livenessProbe", port, env)
        assert not probe(server, "livenessProbe", port, {**env, "OCILLM_API_KEY": "wrong"})
        url, auth = f"http://127.0.0.1:{port}", {"Authorization": f"Bearer {KEY}"}
        tags = httpx.get(url + "/api/tags", headers=auth, timeout=10).json()
        assert [m["name"] for m in tags["models"]] == [REF]
        answer = httpx.post(
            url + "/api/generate",
            headers=auth,
            json={"model": REF, "prompt": "hi", "stream": False, "options": {"num_predict": 2}},
            timeout=120,
        )
        assert answer.status_code == 200, answer.text
        refused = httpx.post(url + "/api/pull", headers=auth, json={"model": "x:1"}, timeout=10)
        assert refused.status_code == 403


def test_the_init_container_pod_pulls_then_serves(
    cli: Any, models: Path, registry: Any, tmp_path: Path
) -> None:
    target = f"{registry.host}/team/tiny:1"
    assert cli("tag", REF, target).returncode == 0
    pushed = cli("push", target)
    assert pushed.returncode == 0, pushed.stderr
    objects = generate(cli, target, "--init-container")
    for doc in objects.values():
        validate(doc)
    pod = objects["Deployment"]["spec"]["template"]["spec"]
    root = tmp_path / "pod"
    make_dirs(root, pod)
    for init in pod["initContainers"]:
        done = subprocess.run(
            argv(init, root, 0),
            env=container_env(init, root, 0),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, f"{init['name']}: {done.stderr}"
    make_read_only(root / "var/lib/ocillm/store")
    (server,) = pod["containers"]
    with running(pod, root) as (port, env):
        wait_ready(server, port, env, root)
        assert probe(server, "livenessProbe", port, env)
        tags = httpx.get(f"http://127.0.0.1:{port}/api/tags", timeout=10).json()
        assert target in [m["name"] for m in tags["models"]]


# -- the shipped manifests -------------------------------------------------------------------


def kustomize(path: Path) -> list[dict[str, Any]]:
    kubectl = need("kubectl")
    done = subprocess.run(
        [kubectl, "kustomize", str(path)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return [d for d in yaml.safe_load_all(done.stdout) if d]


KUSTOMIZATIONS = [
    "kubernetes/base",
    "kubernetes/overlays/gpu",
    "kubernetes/overlays/init-container",
]


@pytest.mark.parametrize("path", KUSTOMIZATIONS)
def test_kustomizations_render_and_validate(path: str) -> None:
    docs = kustomize(DEPLOY / path)
    assert {d["kind"] for d in docs} == {"Deployment", "Service", "PodDisruptionBudget"}
    for doc in docs:
        validate(doc)


def test_every_plain_manifest_file_validates() -> None:
    files = [
        p
        for p in (DEPLOY / "kubernetes").rglob("*.yaml")
        if p.name != "kustomization.yaml" and "overlays" not in p.parts  # patches are partial
    ]
    assert len(files) == 3
    for path in files:
        for doc in yaml.safe_load_all(path.read_text()):
            validate(doc)


def by_name(value: Any) -> Any:
    """Lists of named items (or mounts) in a canonical order: kustomize appends what it merges."""
    if isinstance(value, dict):
        return {k: by_name(v) for k, v in value.items()}
    if isinstance(value, list):
        items = [by_name(v) for v in value]
        if items and all(isinstance(v, dict) and ("name" in v or "mountPath" in v) for v in items):
            return sorted(items, key=lambda v: (str(v.get("mountPath", "")), str(v.get("name"))))
        return items
    return value


GEMMA = "registry.example.com/ocillm/gemma3:270m"
BASE_FLAGS = ["--name", "ocillm", "--replicas", "2", "--pdb-min-available", "1"]


@pytest.fixture
def gemma_store(cli: Any, ocillm_home: Path, tmp_path: Path, gemma_gguf: Path) -> Path:
    shutil.copy(REPO_ROOT / "examples" / "gemma3" / "Modelfile", tmp_path / "Modelfile")
    (tmp_path / "gemma-3-270m-Q4_K_M.gguf").symlink_to(gemma_gguf)
    done = cli("build", "-f", tmp_path / "Modelfile", "-t", GEMMA, "--modelcar")
    assert done.returncode == 0, done.stderr
    return ocillm_home / "models"


@pytest.mark.parametrize(
    ("path", "flags"),
    [
        ("kubernetes/base", []),
        ("kubernetes/overlays/gpu", ["--gpus", "1"]),
        ("kubernetes/overlays/init-container", ["--init-container"]),
    ],
)
def test_shipped_manifests_are_what_generate_prints(
    cli: Any, gemma_store: Path, path: str, flags: list[str]
) -> None:
    """The base is `kube generate` output for examples/gemma3 built --modelcar (a reproducible
    build, so the digest and the estimate are checked here), and each overlay renders to what
    the matching flag generates."""
    generated = generate(cli, GEMMA, *BASE_FLAGS, *flags)
    rendered = {d["kind"]: d for d in kustomize(DEPLOY / path)}
    assert by_name(rendered) == by_name(generated)


def test_kserve_runtime_serves_the_mounted_modelcar() -> None:
    runtime = yaml.safe_load((DEPLOY / "kserve" / "cluster-serving-runtime.yaml").read_text())
    service = yaml.safe_load((DEPLOY / "kserve" / "inference-service.yaml").read_text())
    assert runtime["kind"] == "ClusterServingRuntime"
    assert runtime["apiVersion"] == "serving.kserve.io/v1alpha1"
    # kubernetes-validate has no KServe schemas: its containers and volumes are core/v1 ones,
    # so they are checked as a Pod's.
    spec = runtime["spec"]
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "ocillm"},
        "spec": {"containers": spec["containers"], "volumes": spec["volumes"]},
    }
    validate(pod)
    (server,) = spec["containers"]
    assert server["args"] == ["serve", "--read-only", "--models", "/mnt/models"]
    assert server["readinessProbe"]["httpGet"]["path"] == "/"
    assert server["livenessProbe"]["httpGet"]["path"] == "/api/version"
    model = service["spec"]["predictor"]["model"]
    assert model["runtime"] == runtime["metadata"]["name"]
    assert model["modelFormat"]["name"] in [f["name"] for f in spec["supportedModelFormats"]]
    base = yaml.safe_load((DEPLOY / "kubernetes" / "base" / "deployment.yaml").read_text())
    (volume,) = [v for v in base["spec"]["template"]["spec"]["volumes"] if "image" in v]
    assert model["storageUri"] == "oci+native://" + volume["image"]["reference"]
    requests = base["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"]
    assert model["resources"]["requests"]["memory"] == requests["memory"]
    validate(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "x"},
            "spec": {"containers": [{"name": "x", "image": "x", "resources": model["resources"]}]},
        }
    )


def test_yaml_output_has_one_document_per_object(cli: Any, models: Path) -> None:
    done = cli("kube", "generate", REF, "--hpa-max", "3")
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("---\n") == 3
    objects = generate(cli, REF, "--hpa-max", "3")
    assert dump_all(objects.values()) == done.stdout
