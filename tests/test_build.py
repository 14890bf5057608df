"""`build`: Modelfile -> image in the store, in both formats, reproducible, fast to rebuild."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from ocillm.build import build_image
from ocillm.build.builder import compile_modelfile
from ocillm.errors import BuildError, ModelfileError
from ocillm.image import Role, open_image
from ocillm.image.describe import show
from ocillm.modelfile import parse_modelfile
from ocillm.oci import mediatypes as mt
from ocillm.oci.reference import parse_reference
from ocillm.store import Store

MODELFILE = """\
FROM ./tiny.gguf
SYSTEM You are tiny.
PARAMETER temperature 0.5
PARAMETER stop "<|im_end|>"
PARAMETER stop "</s>"
PARAMETER num_ctx 128
MESSAGE user hi
MESSAGE assistant hello
LICENSE "MIT"
LICENSE "Apache-2.0"
"""


def _project(tmp: Path, gguf: Path, text: str = MODELFILE) -> Path:
    tmp.mkdir(parents=True, exist_ok=True)
    shutil.copy(gguf, tmp / "tiny.gguf")
    (tmp / "Modelfile").write_text(text)
    return tmp / "Modelfile"


def _build(store: Store, modelfile: Path, tag: str = "tiny:1", **kw: object):  # type: ignore[no-untyped-def]
    return build_image(modelfile, [parse_reference(tag)], store=store, **kw)  # type: ignore[arg-type]


def test_modelpack_image_carries_every_piece_as_its_own_blob(
    tmp_path: Path, tiny_gguf: Path
) -> None:
    store = Store(tmp_path / "store")
    result = _build(store, _project(tmp_path / "p", tiny_gguf))
    manifest = store.manifest(result.descriptor)
    assert manifest.media_type == mt.OCI_MANIFEST
    assert manifest.artifact_type == mt.MODELPACK_ARTIFACT
    assert manifest.config.media_type == mt.MODELPACK_CONFIG
    roles = [layer.annotation(mt.ANN_ROLE) for layer in manifest.layers]
    assert roles == ["model", "system", "params", "messages", "license", "license"]
    model = manifest.layers[0]
    assert model.media_type == mt.MODELPACK_WEIGHT
    assert model.annotation(mt.ANN_FILEPATH) == "model.gguf"
    assert model.annotation(mt.ANN_TITLE) == "model.gguf"
    assert (
        model.digest == "sha256:" + __import__("hashlib").sha256(tiny_gguf.read_bytes()).hexdigest()
    )
    assert [layer.media_type for layer in manifest.layers[1:4]] == [mt.MODELPACK_WEIGHT_CONFIG] * 3
    assert manifest.layers[4].media_type == mt.MODELPACK_DOC
    params = json.loads(store.blobs.read_bytes(manifest.layers[2].digest))
    assert params == {"num_ctx": 128, "stop": ["<|im_end|>", "</s>"], "temperature": 0.5}
    messages = json.loads(store.blobs.read_bytes(manifest.layers[3].digest))
    assert messages == [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "hello"},
    ]
    config = json.loads(store.blobs.read_bytes(manifest.config.digest))
    assert config["config"] == {
        "architecture": "llama",
        "format": "gguf",
        "paramSize": result.content.details.parameter_size,
        "quantization": "F32",
    }
    assert config["modelfs"]["diffIds"] == [layer.digest for layer in manifest.layers]


def test_ollama_format_is_docker_schema2_with_ollama_layers(
    tmp_path: Path, tiny_gguf: Path
) -> None:
    store = Store(tmp_path / "store")
    result = _build(store, _project(tmp_path / "p", tiny_gguf), fmt="ollama")
    manifest = store.manifest(result.descriptor)
    raw = json.loads(store.blobs.read_bytes(result.descriptor.digest))
    assert list(raw) == ["schemaVersion", "mediaType", "config", "layers"]
    assert manifest.media_type == mt.DOCKER_MANIFEST
    assert manifest.config.media_type == mt.DOCKER_CONFIG
    assert [layer.media_type for layer in manifest.layers] == [
        mt.OLLAMA_MODEL,
        mt.OLLAMA_SYSTEM,
        mt.OLLAMA_PARAMS,
        mt.OLLAMA_MESSAGES,
        mt.OLLAMA_LICENSE,
        mt.OLLAMA_LICENSE,
    ]
    assert all(layer.annotations is None for layer in manifest.layers)
    config = json.loads(store.blobs.read_bytes(manifest.config.digest))
    assert config["model_format"] == "gguf" and config["model_family"] == "llama"
    assert config["file_type"] == "F32" and config["os"] == "linux"


def test_show_gives_the_same_answer_for_both_formats(tmp_path: Path, tiny_gguf: Path) -> None:
    store = Store(tmp_path / "store")
    modelfile = _project(tmp_path / "p", tiny_gguf)
    _build(store, modelfile, "a:1")
    _build(store, modelfile, "b:1", fmt="ollama")
    a = show(open_image(store, parse_reference("a:1")))
    b = show(open_image(store, parse_reference("b:1")))
    for key in (
        "license",
        "parameters",
        "template",
        "system",
        "details",
        "messages",
        "model_info",
        "capabilities",
    ):
        assert a[key] == b[key], key
    assert a["license"] == "MIT\nApache-2.0"
    assert a["model_info"]["llama.context_length"] == 256


def test_same_inputs_give_the_same_digest_anywhere(tmp_path: Path, tiny_gguf: Path) -> None:
    one = _build(Store(tmp_path / "s1"), _project(tmp_path / "p1", tiny_gguf))
    two = _build(
        Store(tmp_path / "s2"), _project(tmp_path / "elsewhere" / "p2", tiny_gguf), "other/name:2"
    )
    assert one.descriptor.digest == two.descriptor.digest


def test_source_date_epoch_stamps_reproducibly(tmp_path: Path, tiny_gguf: Path) -> None:
    plain = _build(Store(tmp_path / "s0"), _project(tmp_path / "p", tiny_gguf))
    epoch = {"source_date_epoch": 1700000000}
    a = _build(Store(tmp_path / "s1"), tmp_path / "p" / "Modelfile", **epoch)
    b = _build(Store(tmp_path / "s2"), tmp_path / "p" / "Modelfile", **epoch)
    assert a.descriptor.digest == b.descriptor.digest != plain.descriptor.digest
    manifest = Store(tmp_path / "s1").manifest(a.descriptor)
    assert (manifest.annotations or {})[mt.ANN_CREATED] == "2023-11-14T22:13:20Z"


def test_from_a_local_image_reuses_layers_and_merges_params(
    tmp_path: Path, tiny_gguf: Path
) -> None:
    store = Store(tmp_path / "store")
    base = _build(store, _project(tmp_path / "p", tiny_gguf), "base:1")
    child_file = tmp_path / "child" / "Modelfile"
    child_file.parent.mkdir()
    child_file.write_text(
        "FROM base:1\nPARAMETER temperature 0.9\nPARAMETER top_k 7\nSYSTEM Child.\n"
    )
    child = _build(store, child_file, "child:1")
    view = open_image(store, parse_reference("child:1"))
    assert view.params == {
        "num_ctx": 128,
        "stop": ["<|im_end|>", "</s>"],
        "temperature": 0.9,
        "top_k": 7,
    }
    assert view.system == "Child."
    assert view.licenses == ["MIT", "Apache-2.0"]  # inherited
    base_view = open_image(store, parse_reference("base:1"))
    assert view.content.first(Role.MODEL) == base_view.content.first(Role.MODEL)
    assert child.descriptor.digest != base.descriptor.digest


def test_adapter_becomes_its_own_layer(
    tmp_path: Path, tiny_gguf: Path, tiny_gguf_f16: Path
) -> None:
    project = tmp_path / "p"
    project.mkdir()
    shutil.copy(tiny_gguf_f16, project / "lora.gguf")
    modelfile = _project(project, tiny_gguf, "FROM ./tiny.gguf\nADAPTER ./lora.gguf\n")
    store = Store(tmp_path / "store")
    view = open_image(store, _build(store, modelfile).references[0])
    adapter = view.content.first(Role.ADAPTER)
    assert (
        adapter is not None
        and store.blobs.path(adapter.digest).read_bytes() == tiny_gguf_f16.read_bytes()
    )


def test_missing_from_path_names_the_modelfile_line(tmp_path: Path) -> None:
    modelfile = tmp_path / "Modelfile"
    modelfile.write_text("# a comment\nFROM ./nope.gguf\n")
    with pytest.raises(ModelfileError) as err:
        _build(Store(tmp_path / "store"), modelfile)
    assert f"{modelfile}:2:" in str(err.value) and "no such file" in str(err.value)


def test_from_a_registry_image_not_in_the_store_says_pull_first(tmp_path: Path) -> None:
    modelfile = tmp_path / "Modelfile"
    modelfile.write_text("FROM ghcr.io/acme/base:1\n")
    with pytest.raises(ModelfileError, match=r"ocillm pull ghcr\.io/acme/base:1"):
        _build(Store(tmp_path / "store"), modelfile)


def test_a_non_gguf_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "model.gguf").write_bytes(b"not a gguf at all" * 10)
    (tmp_path / "Modelfile").write_text("FROM ./model.gguf\n")
    with pytest.raises(ModelfileError, match="not a GGUF file"):
        _build(Store(tmp_path / "store"), tmp_path / "Modelfile")


def test_rebuild_of_unchanged_inputs_reads_nothing(
    tmp_path: Path, tiny_gguf: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = Store(tmp_path / "store")
    modelfile = _project(tmp_path / "p", tiny_gguf)
    first = _build(store, modelfile)
    import ocillm.store.blobs as blobs

    calls: list[Path] = []
    real = blobs.copy_and_hash
    monkeypatch.setattr(
        blobs, "copy_and_hash", lambda s, d, p=None: calls.append(s) or real(s, d, p)
    )
    again = _build(store, modelfile)
    assert calls == [] and again.descriptor.digest == first.descriptor.digest
    (tmp_path / "p" / "tiny.gguf").touch()  # new mtime: hashed again, same content
    third = _build(store, modelfile)
    assert len(calls) == 1 and third.descriptor.digest == first.descriptor.digest


def test_quantize_from_f16(tmp_path: Path, tiny_gguf_f16: Path) -> None:
    store = Store(tmp_path / "store")
    modelfile = _project(tmp_path / "p", tiny_gguf_f16, "FROM ./tiny.gguf\n")
    result = _build(store, modelfile, quantize="q8_0")
    assert result.content.details.quantization_level == "Q8_0"
    again = _build(store, modelfile, "tiny:2", quantize="Q8_0")  # remembered, not re-quantized
    assert again.descriptor.digest == result.descriptor.digest
    q_file = tmp_path / "q" / "Modelfile"
    q_file.parent.mkdir()
    q_file.write_text(f"FROM {store.blobs.path(result.content.pieces[0].digest)}\n")
    with pytest.raises(BuildError, match="only supported for F16, BF16 and F32"):
        _build(store, q_file, "tiny:3", quantize="q4_K_M")


def test_unknown_quantization_type(tmp_path: Path, tiny_gguf_f16: Path) -> None:
    modelfile = _project(tmp_path / "p", tiny_gguf_f16, "FROM ./tiny.gguf\n")
    with pytest.raises(BuildError, match="unsupported quantization type 'q9_z'"):
        _build(Store(tmp_path / "store"), modelfile, quantize="q9_z")


def test_labels_become_manifest_annotations(tmp_path: Path, tiny_gguf: Path) -> None:
    store = Store(tmp_path / "store")
    result = _build(
        store,
        _project(tmp_path / "p", tiny_gguf),
        labels={"org.opencontainers.image.source": "https://x"},
    )
    assert (store.manifest(result.descriptor).annotations or {})[
        "org.opencontainers.image.source"
    ] == "https://x"


def test_show_modelfile_rebuilds_the_same_image(tmp_path: Path, tiny_gguf: Path) -> None:
    store = Store(tmp_path / "store")
    result = _build(store, _project(tmp_path / "p", tiny_gguf))
    text = show(open_image(store, parse_reference("tiny:1")))["modelfile"]
    again = compile_modelfile(
        parse_modelfile(text), [parse_reference("copy:1")], store=store, context=tmp_path
    )
    assert again.descriptor.digest == result.descriptor.digest


def test_skopeo_reads_the_store_as_an_oci_layout(tmp_path: Path, tiny_gguf: Path) -> None:
    store = Store(tmp_path / "store")
    result = _build(store, _project(tmp_path / "p", tiny_gguf), "ghcr.io/acme/tiny:1")
    layout = f"oci:{store.root}:ghcr.io/acme/tiny:1"
    raw = subprocess.run(
        ["skopeo", "inspect", "--raw", layout], capture_output=True, text=True, check=True
    )
    assert json.loads(raw.stdout)["artifactType"] == mt.MODELPACK_ARTIFACT
    import hashlib

    assert "sha256:" + hashlib.sha256(raw.stdout.encode()).hexdigest() == result.descriptor.digest
    out = tmp_path / "copied"
    subprocess.run(
        ["skopeo", "copy", "--quiet", layout, f"dir:{out}"], check=True, capture_output=True
    )
    assert (out / tiny_gguf_digest_hex(tiny_gguf)).read_bytes() == tiny_gguf.read_bytes()


def tiny_gguf_digest_hex(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_template_that_does_not_parse_fails_the_build_with_positions(
    tmp_path: Path, tiny_gguf: Path
) -> None:
    text = 'FROM ./tiny.gguf\nSYSTEM hi\nTEMPLATE """{{ .System }}\n{{ if .Prompt }}open"""\n'
    modelfile = _project(tmp_path / "p", tiny_gguf, text)
    with pytest.raises(ModelfileError) as err:
        _build(Store(tmp_path / "store"), modelfile)
    message = str(err.value)
    assert (
        f"{modelfile}:3:" in message
        and "invalid template" in message
        and "template line" in message
    )


def test_a_valid_template_is_stored_and_gives_capabilities(tmp_path: Path, tiny_gguf: Path) -> None:
    template = "{{ if .Tools }}{{ .Tools }}{{ end }}{{ range .Messages }}{{ .Content }}{{ end }}"
    modelfile = _project(
        tmp_path / "p", tiny_gguf, f'FROM ./tiny.gguf\nTEMPLATE """{template}"""\n'
    )
    store = Store(tmp_path / "store")
    view = open_image(store, _build(store, modelfile).references[0])
    assert view.template == template
    assert show(view)["capabilities"] == ["completion", "tools"]
