"""``build --modelcar`` / ``push --modelcar``: a runnable image with the files under /models/,
linked with the ModelPack artifact in one index, proven with real podman, umoci and skopeo."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ocillm.build.builder import build_image
from ocillm.image.modelcar import write_modelcar
from ocillm.oci import mediatypes as mt
from ocillm.oci.models import Index, Manifest
from ocillm.store import Store

REF = "registry.ollama.ai/library/tiny:1"


def need(binary: str) -> str:
    # .ci/system-deps.sh installs every one of these: missing is a broken setup, not a skip.
    path = shutil.which(binary)
    if path is None:
        pytest.fail(f"{binary} is not installed (run .ci/system-deps.sh)", pytrace=False)
    return path


def write_modelfile(tmp: Path, gguf: Path) -> Path:
    shutil.copy(gguf, tmp / "tiny.gguf")
    (tmp / "Modelfile").write_text(
        'FROM ./tiny.gguf\nSYSTEM "You are terse."\nPARAMETER temperature 0.2\nLICENSE """MIT"""\n'
    )
    return tmp / "Modelfile"


def blob(store_root: Path, digest: str) -> bytes:
    return (store_root / "blobs" / "sha256" / digest.split(":", 1)[1]).read_bytes()


def index_of(store_root: Path, ref: str = REF) -> tuple[str, Index]:
    entries = json.loads((store_root / "index.json").read_text())["manifests"]
    entry = next(e for e in entries if e["annotations"][mt.ANN_REF_NAME] == ref)
    assert entry["mediaType"] == mt.OCI_INDEX
    return entry["digest"], Index.model_validate_json(blob(store_root, entry["digest"]))


def artifact_of(store_root: Path, index: Index) -> Manifest:
    entry = next(e for e in index.manifests if e.artifact_type == mt.MODELPACK_ARTIFACT)
    return Manifest.from_bytes(blob(store_root, entry.digest))


def expected_files(store_root: Path, artifact: Manifest) -> dict[str, str]:
    """/models/<filepath> -> sha256 of each ModelPack layer."""
    return {
        f"models/{layer.annotations[mt.ANN_FILEPATH]}": layer.digest for layer in artifact.layers
    }  # type: ignore[index]


def check_tree(root: Path, expected: dict[str, str]) -> None:
    for name, digest in expected.items():
        data = (root / name).read_bytes()
        assert "sha256:" + hashlib.sha256(data).hexdigest() == digest, name
    # /models is itself an OCI layout holding the artifact: its blobs resolve to the files.
    for digest in expected.values():
        link = root / "models" / "blobs" / "sha256" / digest.split(":", 1)[1]
        assert "sha256:" + hashlib.sha256(link.read_bytes()).hexdigest() == digest


@pytest.fixture
def built(cli: Any, ocillm_home: Path, tmp_path: Path, tiny_gguf: Path) -> Path:
    modelfile = write_modelfile(tmp_path, tiny_gguf)
    done = cli("build", "-f", modelfile, "-t", "tiny:1", "--modelcar")
    assert done.returncode == 0, done.stderr
    assert "modelcar index" in done.stdout
    return ocillm_home / "models"


def test_build_modelcar_links_image_and_artifact_in_one_index(built: Path, cli: Any) -> None:
    _, index = index_of(built)
    images = [e for e in index.manifests if e.platform and e.platform["os"] == "linux"]
    assert sorted(e.platform["architecture"] for e in images) == ["amd64", "arm64"]  # type: ignore[index]
    artifact_entry = next(e for e in index.manifests if e.artifact_type == mt.MODELPACK_ARTIFACT)
    assert artifact_entry.platform == {"architecture": "unknown", "os": "unknown"}
    artifact = artifact_of(built, index)
    for entry in images:
        manifest = Manifest.from_bytes(blob(built, entry.digest))
        config = json.loads(blob(built, manifest.config.digest))
        assert manifest.config.media_type == mt.OCI_IMAGE_CONFIG
        assert (config["os"], config["architecture"]) == (
            entry.platform["os"],  # type: ignore[index]
            entry.platform["architecture"],  # type: ignore[index]
        )
        # Uncompressed tar layers: each diff_id is its layer's digest, and hashes true.
        assert config["rootfs"] == {
            "type": "layers",
            "diff_ids": [x.digest for x in manifest.layers],
        }
        for layer in manifest.layers:
            assert layer.media_type == mt.OCI_LAYER
            data = blob(built, layer.digest)
            assert "sha256:" + hashlib.sha256(data).hexdigest() == layer.digest
    # The weight layer holds the GGUF byte for byte, its data on a 4 KiB boundary (reflinkable).
    first = Manifest.from_bytes(blob(built, images[0].digest)).layers[0]
    with tarfile.open(built / "blobs" / "sha256" / first.digest.split(":")[1]) as tar:
        member = tar.getmember("models/model.gguf")
        assert member.offset_data % 4096 == 0
        assert (member.uid, member.gid, member.mtime) == (0, 0, 0)
        extracted = tar.extractfile(member)
        assert extracted is not None
        weight = artifact.layers[0]
        assert "sha256:" + hashlib.sha256(extracted.read()).hexdigest() == weight.digest
    # ocillm itself reads the index as the model: show and list still work.
    shown = cli("show", "tiny:1", "--json")
    assert shown.returncode == 0, shown.stderr
    listed = cli("list")
    assert "tiny:1" in listed.stdout


def test_modelcar_is_reproducible_and_a_rebuild_writes_no_new_tar(
    tmp_path: Path, tiny_gguf: Path
) -> None:
    modelfile = write_modelfile(tmp_path, tiny_gguf)
    digests = []
    for n in range(2):
        store = Store.open(tmp_path / f"store{n}")
        ref = store.parse("tiny:1")
        result = build_image(modelfile, [ref], store=store)
        car = write_modelcar(store, result.descriptor, [ref])
        assert car.new_bytes > tiny_gguf.stat().st_size
        again = write_modelcar(store, result.descriptor, [ref])
        assert again.index == car.index
        assert again.new_bytes < 64 * 1024  # only the small metadata layer is rewritten
        digests.append(car.index.digest)
    assert digests[0] == digests[1]


def test_prune_keeps_modelcar_blobs_and_rm_deletes_them(built: Path, cli: Any) -> None:
    before = set((built / "blobs" / "sha256").iterdir())
    assert cli("prune").returncode == 0
    assert set((built / "blobs" / "sha256").iterdir()) == before
    assert cli("rm", "tiny:1").returncode == 0
    assert list((built / "blobs" / "sha256").iterdir()) == []


def test_umoci_unpacks_files_under_models(built: Path, tmp_path: Path) -> None:
    need("skopeo")
    umoci = need("umoci")
    layout = tmp_path / "copied"
    run(["skopeo", "copy", f"oci:{built}:{REF}", f"oci:{layout}:car"])
    # skopeo picked the runnable image (this machine's platform), not the artifact.
    copied = json.loads((layout / "index.json").read_text())["manifests"][0]
    manifest = Manifest.from_bytes(blob(layout, copied["digest"]))
    assert manifest.config.media_type == mt.OCI_IMAGE_CONFIG
    bundle = tmp_path / "bundle"
    run([umoci, "unpack", "--rootless", "--image", f"{layout}:car", str(bundle)])
    _, index = index_of(built)
    check_tree(bundle / "rootfs", expected_files(built, artifact_of(built, index)))


@pytest.fixture
def podman() -> Iterator[list[str]]:
    """podman with its own storage (vfs: no fuse, no kernel overlay) in a short temp dir
    (podman refuses a runroot over 50 characters)."""
    binary = need("podman")
    base = Path(tempfile.mkdtemp(prefix="ocpm-", dir="/tmp"))
    yield [binary, "--root", str(base / "root"), "--runroot", str(base / "run"), "--storage-driver", "vfs"]  # fmt: skip
    shutil.rmtree(base, ignore_errors=True)


def test_podman_pulls_and_mounts_the_modelcar(built: Path, podman: list[str]) -> None:
    pulled = run([*podman, "pull", "-q", f"oci:{built}:{REF}"]).stdout.strip().splitlines()[-1]
    mount = run([*podman, "image", "mount", pulled]).stdout.strip()
    try:
        _, index = index_of(built)
        check_tree(Path(mount), expected_files(built, artifact_of(built, index)))
    finally:
        run([*podman, "image", "unmount", pulled])
        run([*podman, "rmi", "-f", pulled])


def test_push_modelcar_then_pull_takes_the_artifact_and_skopeo_the_image(
    cli: Any, registry: Any, tmp_path: Path, tiny_gguf: Path
) -> None:
    modelfile = write_modelfile(tmp_path, tiny_gguf)
    target = f"{registry.host}/team/tiny:1"
    assert cli("build", "-f", modelfile, "-t", target).returncode == 0
    pushed = cli("push", target, "--modelcar")
    assert pushed.returncode == 0, pushed.stderr
    # The registry holds the index; ocillm pull of it takes the ModelPack artifact.
    other = tmp_path / "other"
    pulled = cli("pull", target, env={"OCILLM_MODELS": str(other)})
    assert pulled.returncode == 0, pulled.stderr
    assert "(modelpack)" in pulled.stdout
    entry = json.loads((other / "index.json").read_text())["manifests"][0]
    assert entry["artifactType"] == mt.MODELPACK_ARTIFACT
    # skopeo copy of the same reference yields the runnable image.
    need("skopeo")
    out = tmp_path / "skopeo-out"
    run(["skopeo", "copy", "--src-tls-verify=false", f"docker://{target}", f"oci:{out}:car"])
    copied = json.loads((out / "index.json").read_text())["manifests"][0]
    manifest = Manifest.from_bytes(blob(out, copied["digest"]))
    config = json.loads(blob(out, manifest.config.digest))
    assert config["os"] == "linux" and config["rootfs"]["diff_ids"]


def run(argv: list[str]) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"{argv[0]} {argv[1:4]}: {done.stderr[-2000:]}"
    return done
