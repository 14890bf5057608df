"""`ADAPTER ./lora-dir`: a PEFT LoRA converts to a GGUF LoRA for the build's base model."""

from __future__ import annotations

import json
from pathlib import Path

import convert_support as cs
import numpy as np
import pytest

from ocillm.build import build_image
from ocillm.errors import ModelfileError
from ocillm.image import Role
from ocillm.oci.reference import parse_reference
from ocillm.runner.llama_loader import open_llama
from ocillm.store import Store

PROMPT = b"the quick brown fox jumps over"
RANK, ALPHA = 4, 8.0


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("hf")
    cs.write_llama(root / "base")
    cfg = json.loads((root / "base" / "config.json").read_text())
    cs.write_lora(root / "lora", cfg, rank=RANK, alpha=ALPHA)
    return root


def build(store: Store, root: Path, text: str) -> tuple[Path, Path]:
    (root / "Modelfile").write_text(text)
    result = build_image(root / "Modelfile", [parse_reference("lora:1")], store=store)
    pieces = {p.role: p for p in result.content.pieces}
    return store.blobs.path(pieces[Role.MODEL].digest), store.blobs.path(
        pieces[Role.ADAPTER].digest
    )


def last_logits(model: Path, lora: Path | None) -> tuple[list[int], np.ndarray]:
    kwargs = {"lora_path": str(lora)} if lora else {}
    llm = open_llama(model, n_ctx=64, logits_all=True, verbose=False, n_threads=2, **kwargs)
    try:
        tokens = llm.tokenize(PROMPT, add_bos=True)
        llm.eval(tokens)
        return tokens, np.array(llm.scores[len(tokens) - 1])
    finally:
        llm.close()


def test_lora_converts_and_applies_like_the_merged_weights(
    tmp_path: Path, checkpoint: Path
) -> None:
    from gguf import GGUFReader

    model, adapter = build(Store(tmp_path / "s"), checkpoint, "FROM ./base\nADAPTER ./lora\n")
    reader = GGUFReader(adapter)
    assert reader.fields["general.type"].contents() == "adapter"
    assert reader.fields["adapter.type"].contents() == "lora"
    assert reader.fields["adapter.lora.alpha"].contents() == ALPHA
    names = {t.name for t in reader.tensors}
    assert "blk.0.attn_q.weight.lora_a" in names and "blk.1.attn_output.weight.lora_b" in names

    tokens, base = last_logits(model, None)
    _, adapted = last_logits(model, adapter)
    assert np.abs(adapted - base).max() > 0.1  # the adapter changes the output

    cfg = json.loads((checkpoint / "base" / "config.json").read_text())
    weights = {
        k: v.astype(np.float16).astype(np.float32) if v.ndim == 2 else v
        for k, v in cs.llama_weights(cfg).items()
    }
    lora = cs.write_lora(tmp_path / "again", cfg, rank=RANK, alpha=ALPHA)  # same seed, same values
    merged = cs.merge_lora(weights, lora, ALPHA / RANK)
    reference = cs.llama_logits(merged, cfg, tokens)[-1]
    assert np.abs(adapted - reference).max() < 0.05 * np.abs(reference).max()
    assert int(np.argmax(adapted)) == int(np.argmax(reference))


def test_lora_conversion_is_deterministic(tmp_path: Path, checkpoint: Path) -> None:
    text = "FROM ./base\nADAPTER ./lora\n"
    _, first = build(Store(tmp_path / "a"), checkpoint, text)
    _, second = build(Store(tmp_path / "b"), checkpoint, text)
    assert first.name == second.name  # the digest


def test_dora_adapter_is_a_one_line_error(tmp_path: Path, checkpoint: Path) -> None:
    dora = tmp_path / "dora"
    cfg = json.loads((checkpoint / "base" / "config.json").read_text())
    cs.write_lora(dora, cfg)
    config = json.loads((dora / "adapter_config.json").read_text())
    (dora / "adapter_config.json").write_text(json.dumps({**config, "use_dora": True}))
    (checkpoint / "dora").symlink_to(dora, target_is_directory=True)
    try:
        with pytest.raises(ModelfileError) as e:
            build(Store(tmp_path / "s"), checkpoint, "FROM ./base\nADAPTER ./dora\n")
    finally:
        (checkpoint / "dora").unlink()
    assert "\n" not in str(e.value)
    assert "ADAPTER ./dora" in str(e.value) and "DoRA" in str(e.value)
