"""`FROM ./checkpoint-dir`: Hugging Face safetensors folders convert to GGUF during build."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import Any

import convert_support as cs
import numpy as np
import pytest

from ocillm.build import build_image
from ocillm.convert.architectures import permute_rotary
from ocillm.errors import ModelfileError
from ocillm.gguf import read_gguf_info
from ocillm.image import Role, open_image
from ocillm.oci.reference import parse_reference
from ocillm.runner.llama_loader import open_llama
from ocillm.store import Store

PROMPT = b"the quick brown fox jumps over"


@pytest.fixture(scope="module")
def llama_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("hf") / "tiny-llama"
    cs.write_llama(folder)
    return folder


@pytest.fixture(scope="module")
def gemma_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("hf") / "tiny-gemma"
    cs.write_gemma(folder)
    return folder


def build(store: Store, checkpoint: Path, extra: str = "", tag: str = "conv:1", **kw: Any) -> Any:
    project = checkpoint.parent / f"project-{tag.replace(':', '-')}"
    project.mkdir(exist_ok=True)
    modelfile = project / "Modelfile"
    modelfile.write_text(f"FROM {checkpoint}\n{extra}")
    return build_image(modelfile, [parse_reference(tag)], store=store, **kw)


def model_path(store: Store, result: Any, role: Role = Role.MODEL) -> Path:
    piece = next(p for p in result.content.pieces if p.role is role)
    return store.blobs.path(piece.digest)


def gguf_tensors(path: Path) -> dict[str, np.ndarray]:
    from gguf import GGMLQuantizationType, GGUFReader

    out = {}
    for t in GGUFReader(path).tensors:
        data = np.asarray(t.data)
        if t.tensor_type == GGMLQuantizationType.BF16:
            data = cs.from_bf16_bits(data.view(np.uint16)).reshape(
                tuple(reversed(t.shape.tolist()))
            )
        out[t.name] = data.astype(np.float32)
    return out


def llama_logits_and_greedy(path: Path, steps: int = 6) -> tuple[list[int], np.ndarray, list[int]]:
    llm = open_llama(path, n_ctx=64, logits_all=True, verbose=False, n_threads=2)
    try:
        tokens = llm.tokenize(PROMPT, add_bos=True)
        llm.eval(tokens)
        logits = np.array(llm.scores[: len(tokens)])
        llm.reset()
        out: list[int] = []
        for t in llm.generate(tokens, top_k=1, temp=0.0):
            out.append(int(t))
            if len(out) == steps:
                break
        return tokens, logits, out
    finally:
        llm.close()


def f16(weights: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """What the GGUF holds: matrices rounded to F16, vectors kept F32."""
    return {
        k: v.astype(np.float16).astype(np.float32) if v.ndim == 2 else v for k, v in weights.items()
    }


def test_llama_checkpoint_builds_and_llama_cpp_matches_a_reference_forward_pass(
    tmp_path: Path, llama_dir: Path
) -> None:
    store = Store(tmp_path / "store")
    result = build(store, llama_dir)
    path = model_path(store, result)
    info = read_gguf_info(path)
    assert info.architecture == "llama"
    assert info.file_type == "F16"
    cfg = json.loads((llama_dir / "config.json").read_text())
    weights = f16(cs.llama_weights(cfg))
    tokens, logits, greedy = llama_logits_and_greedy(path)
    reference = cs.llama_logits(weights, cfg, tokens)
    assert np.abs(logits - reference).max() < 0.05 * np.abs(reference).max()
    assert greedy == cs.greedy(lambda t: cs.llama_logits(weights, cfg, t), tokens, len(greedy))


def test_llama_tensors_equal_the_safetensors_after_the_documented_transforms(
    tmp_path: Path, llama_dir: Path
) -> None:
    store = Store(tmp_path / "store")
    path = model_path(store, build(store, llama_dir))
    cfg = json.loads((llama_dir / "config.json").read_text())
    hf = f16(cs.llama_weights(cfg))
    got = gguf_tensors(path)
    assert len(got) == len(hf)
    np.testing.assert_array_equal(got["token_embd.weight"], hf["model.embed_tokens.weight"])
    np.testing.assert_array_equal(got["output.weight"], hf["lm_head.weight"])
    np.testing.assert_array_equal(got["output_norm.weight"], hf["model.norm.weight"])
    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}."
        q = permute_rotary(hf[p + "self_attn.q_proj.weight"], cfg["num_attention_heads"])
        k = permute_rotary(hf[p + "self_attn.k_proj.weight"], cfg["num_key_value_heads"])
        np.testing.assert_array_equal(got[f"blk.{i}.attn_q.weight"], q)
        np.testing.assert_array_equal(got[f"blk.{i}.attn_k.weight"], k)
        np.testing.assert_array_equal(
            got[f"blk.{i}.attn_v.weight"], hf[p + "self_attn.v_proj.weight"]
        )
        np.testing.assert_array_equal(
            got[f"blk.{i}.ffn_down.weight"], hf[p + "mlp.down_proj.weight"]
        )
        np.testing.assert_array_equal(
            got[f"blk.{i}.attn_norm.weight"], hf[p + "input_layernorm.weight"]
        )


def test_bpe_tokenizer_special_tokens_and_chat_template_reach_the_gguf(
    tmp_path: Path, llama_dir: Path
) -> None:
    from tokenizers import Tokenizer

    store = Store(tmp_path / "store")
    result = build(store, llama_dir)
    meta = read_gguf_info(model_path(store, result), verbose=True).metadata
    assert meta["tokenizer.ggml.model"] == "gpt2"
    assert meta["tokenizer.ggml.pre"] == "llama-bpe"
    assert read_gguf_info(model_path(store, result)).chat_template == cs.CHAT_TEMPLATE
    assert meta["tokenizer.ggml.bos_token_id"] == 0
    assert meta["tokenizer.ggml.eos_token_id"] == 4  # <|eot_id|>, tokenizer_config's eos_token
    hf = Tokenizer.from_file(str(llama_dir / "tokenizer.json"))
    llm = open_llama(model_path(store, result), n_ctx=64, verbose=False, vocab_only=True)
    try:
        for text in ("the quick brown fox", "numbers like 12345 and 6789!", "  rivers\n\nbirds's"):
            assert (
                llm.tokenize(text.encode(), add_bos=False)
                == hf.encode(text, add_special_tokens=False).ids
            )
        assert llm.tokenize(b"<|eot_id|>", add_bos=False, special=True) == [4]
    finally:
        llm.close()


def test_generation_config_end_tokens_become_stop_parameters(
    tmp_path: Path, llama_dir: Path
) -> None:
    store = Store(tmp_path / "store")
    result = build(store, llama_dir)
    image = open_image(store, parse_reference("conv:1"))
    assert image.params["stop"] == ["<|end_of_text|>", "<|eot_id|>"]
    # a Modelfile's own stop wins
    result = build(store, llama_dir, 'PARAMETER stop "<|end_of_text|>"\n', tag="conv:2")
    assert open_image(store, parse_reference("conv:2")).params["stop"] == ["<|end_of_text|>"]
    assert result.content.details.family == "llama"


def test_same_checkpoint_gives_the_same_image_digest(tmp_path: Path, llama_dir: Path) -> None:
    first = build(Store(tmp_path / "a"), llama_dir)
    again = build(Store(tmp_path / "a"), llama_dir, tag="conv:again")
    copy = tmp_path / "elsewhere" / "renamed-copy"
    shutil.copytree(llama_dir, copy)
    other = build(Store(tmp_path / "b"), copy)
    assert first.descriptor.digest == again.descriptor.digest == other.descriptor.digest


def test_quantize_q8_0_works_on_the_converted_model(tmp_path: Path, llama_dir: Path) -> None:
    store = Store(tmp_path / "store")
    result = build(store, llama_dir, quantize="q8_0")
    path = model_path(store, result)
    assert read_gguf_info(path).file_type == "Q8_0"
    _, _, greedy = llama_logits_and_greedy(path, steps=3)
    assert len(greedy) == 3


def test_gemma3_checkpoint_with_sentencepiece_matches_a_reference_forward_pass(
    tmp_path: Path, gemma_dir: Path
) -> None:
    import sentencepiece as spm

    store = Store(tmp_path / "store")
    result = build(store, gemma_dir)
    path = model_path(store, result)
    meta = read_gguf_info(path, verbose=True).metadata
    assert meta["general.architecture"] == "gemma3"
    assert meta["tokenizer.ggml.model"] == "llama"
    assert meta["tokenizer.ggml.add_space_prefix"] is False
    assert read_gguf_info(path).file_type == "BF16"
    cfg = json.loads((gemma_dir / "config.json").read_text())
    weights = cs.gemma_weights(cfg)
    got = gguf_tensors(path)
    # Gemma's zero-centred norms get +1; bf16 matrices are carried bit for bit
    np.testing.assert_array_equal(
        got["blk.0.attn_q_norm.weight"], weights["model.layers.0.self_attn.q_norm.weight"] + 1
    )
    np.testing.assert_array_equal(
        got["blk.1.post_ffw_norm.weight"],
        weights["model.layers.1.post_feedforward_layernorm.weight"] + 1,
    )
    np.testing.assert_array_equal(
        got["blk.0.attn_q.weight"], weights["model.layers.0.self_attn.q_proj.weight"]
    )
    assert "output.weight" not in got  # tied to the embedding
    tokens, logits, greedy = llama_logits_and_greedy(path)
    sp = spm.SentencePieceProcessor(model_file=str(gemma_dir / "tokenizer.model"))
    assert tokens == [2, *sp.EncodeAsIds(PROMPT.decode())]
    reference = cs.gemma3_logits(weights, cfg, tokens)
    assert np.abs(logits - reference).max() < 0.05 * np.abs(reference).max()
    assert greedy == cs.greedy(lambda t: cs.gemma3_logits(weights, cfg, t), tokens, len(greedy))
    assert open_image(store, parse_reference("conv:1")).params["stop"] == ["<eos>", "<end_of_turn>"]


def test_unsupported_architecture_is_a_one_line_error(tmp_path: Path, llama_dir: Path) -> None:
    folder = tmp_path / "phi"
    shutil.copytree(llama_dir, folder)
    cfg = json.loads((folder / "config.json").read_text())
    cfg["architectures"] = ["PhiForCausalLM"]
    (folder / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ModelfileError) as e:
        build(Store(tmp_path / "store"), folder)
    message = str(e.value)
    assert "\n" not in message
    assert "architecture PhiForCausalLM is not supported" in message
    assert "LlamaForCausalLM" in message and "Gemma3ForCausalLM" in message


def test_folder_without_config_json_is_a_one_line_error(tmp_path: Path, llama_dir: Path) -> None:
    folder = tmp_path / "noconfig"
    shutil.copytree(llama_dir, folder)
    (folder / "config.json").unlink()
    store = Store(tmp_path / "store")
    with pytest.raises(ModelfileError) as e:
        build(store, folder)
    assert "\n" not in str(e.value)
    assert "no config.json" in str(e.value)
    assert (
        not list((store.root / "ingest").glob("tmp-*"))
        if (store.root / "ingest").exists()
        else True
    )


def test_sentencepiece_checkpoint_without_the_convert_extra_names_it(
    tmp_path: Path, gemma_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "sentencepiece", None)  # as if not installed
    with pytest.raises(ModelfileError) as e:
        build(Store(tmp_path / "store"), gemma_dir)
    assert "\n" not in str(e.value)
    assert "pip install 'ocillm[convert]'" in str(e.value)
