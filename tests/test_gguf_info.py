"""ocillm.gguf reads the real metadata of real GGUF files, and rejects what is not GGUF."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import gguf
import pytest
import tiny_gguf as gen

from ocillm.errors import BuildError
from ocillm.gguf import (
    MAX_SHOWN_ARRAY,
    file_type_name,
    human_number,
    is_gguf,
    open_header,
    read_gguf_info,
)

# -- the tiny model -----------------------------------------------------------------------------


def tiny_parameter_count(
    n_vocab: int = 512, n_embd: int = 64, n_layer: int = 2, n_head: int = 4, n_head_kv: int = 2,
    n_ff: int = 128,
) -> int:  # fmt: skip
    kv_dim = n_embd // n_head * n_head_kv
    per_layer = 2 * n_embd + 2 * n_embd * n_embd + 2 * kv_dim * n_embd + 3 * n_embd * n_ff
    return 2 * n_vocab * n_embd + n_embd + n_layer * per_layer


def test_tiny_model_summary(tiny_gguf: Path) -> None:
    info = read_gguf_info(tiny_gguf)
    assert info.architecture == "llama"
    assert info.name == "tiny-llama"
    assert info.file_type == "F32"
    assert info.parameter_count == tiny_parameter_count() == 139_584
    assert info.parameter_size == "140K"
    assert info.context_length == 256
    assert info.embedding_length == 64
    assert info.block_count == 2
    assert info.head_count == 4
    assert info.head_count_kv == 2
    assert info.key_length is None and info.value_length is None
    assert info.vocab_size == 512
    assert info.chat_template == gen.DEFAULT_CHAT_TEMPLATE
    assert info.bos_token == "<s>"
    assert info.eos_token == "</s>"
    assert info.pooling_type is None
    assert info.is_embedding_model is False


def test_tiny_model_tensors_and_layer_bytes(tiny_gguf: Path) -> None:
    info = read_gguf_info(tiny_gguf)
    names = {t.name: t for t in info.tensors}
    assert len(info.tensors) == 2 + 2 * 9 + 1
    emb = names["token_embd.weight"]
    assert emb.type == "F32" and emb.shape == [64, 512] and emb.n_bytes == 64 * 512 * 4
    assert names["blk.1.attn_k.weight"].shape == [64, 32]
    assert info.tensor_bytes == info.parameter_count * 4  # all F32
    assert set(info.layer_bytes) == {0, 1}
    assert info.layer_bytes[0] == info.layer_bytes[1]
    outside = sum(t.n_bytes for t in info.tensors if not t.name.startswith("blk."))
    assert sum(info.layer_bytes.values()) + outside == info.tensor_bytes
    assert info.tensor_bytes < tiny_gguf.stat().st_size


def test_f16_model_file_type_and_sizes(tiny_gguf_f16: Path, tmp_path: Path) -> None:
    f16 = read_gguf_info(tiny_gguf_f16)
    assert f16.file_type == "F16"
    assert f16.embedding_length == 256
    assert f16.parameter_count == tiny_parameter_count(n_embd=256, n_ff=256)
    types = {t.name: t.type for t in f16.tensors}
    assert types["blk.0.attn_q.weight"] == "F16"
    assert types["blk.0.attn_norm.weight"] == "F32"  # norms stay F32
    norms = sum(t.n_bytes for t in f16.tensors if t.type == "F32")
    assert f16.tensor_bytes == (f16.parameter_count - norms // 4) * 2 + norms
    f32 = read_gguf_info(gen.write_tiny_gguf(tmp_path / "f32.gguf", n_embd=256, n_ff=256))
    assert f32.parameter_count == f16.parameter_count
    assert f32.tensor_bytes == f32.parameter_count * 4


def test_metadata_is_ollama_model_info(tiny_gguf: Path) -> None:
    info = read_gguf_info(tiny_gguf)
    md = info.metadata
    assert "general.name" not in md
    assert "tokenizer.chat_template" not in md
    assert md["general.architecture"] == "llama"
    assert md["general.parameter_count"] == info.parameter_count
    assert md["llama.context_length"] == 256
    assert md["llama.attention.layer_norm_rms_epsilon"] == 1e-05  # float32 printed shortest
    assert md["tokenizer.ggml.add_bos_token"] is True
    assert md["tokenizer.ggml.tokens"] == []  # 512 > 5: emptied unless verbose
    assert md["tokenizer.ggml.scores"] == []
    json.dumps(md)  # serialisable as-is


def test_verbose_metadata_keeps_arrays(tiny_gguf: Path) -> None:
    md = read_gguf_info(tiny_gguf, verbose=True).metadata
    tokens, scores, types = gen.build_vocab(512)
    assert md["tokenizer.ggml.tokens"] == tokens
    assert md["tokenizer.ggml.token_type"] == types
    assert md["tokenizer.ggml.scores"] == pytest.approx(scores)


def test_short_arrays_are_kept(tmp_path: Path) -> None:
    path = tmp_path / "arrays.gguf"
    w = gguf.GGUFWriter(path, "llama")
    w.add_array("general.tags", ["a", "b", "c"])
    w.add_array("test.five", [1, 2, 3, 4, 5])
    w.add_array("test.six", [1, 2, 3, 4, 5, 6])
    w.add_tensor("x.weight", gguf_f32([4, 8]))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    info = read_gguf_info(path)
    assert MAX_SHOWN_ARRAY == 5
    assert info.metadata["general.tags"] == ["a", "b", "c"]
    assert info.metadata["test.five"] == [1, 2, 3, 4, 5]
    assert info.metadata["test.six"] == []
    assert read_gguf_info(path, verbose=True).metadata["test.six"] == [1, 2, 3, 4, 5, 6]
    # No general.file_type: inferred from the weights' type.
    assert info.file_type == "F32"
    assert info.context_length is None and info.vocab_size is None and info.layer_bytes == {}


def gguf_f32(shape: list[int]) -> Any:
    import numpy as np

    return np.zeros(shape, dtype=np.float32)


def test_agrees_with_gguf_reader(tiny_gguf_f16: Path) -> None:
    """Every key/value and tensor equals what the gguf package's own reader sees."""
    reader = gguf.GGUFReader(tiny_gguf_f16)
    with open_header(tiny_gguf_f16) as header:
        assert header.data_offset == reader.data_offset
        for key, field in reader.fields.items():
            if key.startswith("GGUF."):
                continue
            ours = header.value(key)
            theirs = field.contents()
            if isinstance(theirs, float) or (theirs and isinstance(theirs, list)):
                assert ours == pytest.approx(theirs), key
            else:
                assert ours == theirs, key
        assert set(header.kv) == {k for k in reader.fields if not k.startswith("GGUF.")}
    info = read_gguf_info(tiny_gguf_f16)
    assert [(t.name, t.type, t.shape, t.n_bytes) for t in info.tensors] == [
        (t.name, t.tensor_type.name, t.shape.tolist(), t.n_bytes) for t in reader.tensors
    ]


def test_embedding_model(tiny_embed_gguf: Path) -> None:
    info = read_gguf_info(tiny_embed_gguf)
    assert info.is_embedding_model is True
    assert info.pooling_type == 1
    assert info.chat_template is None
    assert info.metadata["llama.attention.causal"] is False


def test_context_length_and_no_template(tmp_path: Path) -> None:
    path = gen.write_tiny_gguf(tmp_path / "m.gguf", context_length=4096, chat_template=None)
    info = read_gguf_info(path)
    assert info.context_length == 4096
    assert info.chat_template is None


# -- the real model ------------------------------------------------------------------------------


def test_gemma3_270m(gemma_gguf: Path) -> None:
    info = read_gguf_info(gemma_gguf)
    assert info.architecture == "gemma3"
    assert info.name == "Gemma 3 270m"
    assert info.file_type == "Q4_K_M"
    assert info.parameter_count == 268_098_176
    assert info.parameter_size == "268.10M"  # what `ollama show gemma3:270m` prints
    assert info.context_length == 32768
    assert info.embedding_length == 640
    assert info.block_count == 18
    assert info.head_count == 4
    assert info.head_count_kv == 1
    assert info.key_length == 256 and info.value_length == 256
    assert info.vocab_size == 262_144
    assert info.chat_template is None  # this GGUF ships none
    assert info.bos_token == "<bos>"
    assert info.eos_token == "<eos>"
    assert info.is_embedding_model is False
    assert len(info.tensors) == 236
    assert set(info.layer_bytes) == set(range(18))
    types = {t.type for t in info.tensors}
    assert {"Q4_K", "Q8_0", "F32"} <= types
    assert 240_000_000 < info.tensor_bytes < gemma_gguf.stat().st_size
    md = info.metadata
    assert md["gemma3.attention.sliding_window"] == 512
    assert md["gemma3.attention.layer_norm_rms_epsilon"] == 1e-06
    assert md["general.file_type"] == 15
    assert md["tokenizer.ggml.tokens"] == []
    assert md["general.tags"] == ["gemma3", "gemma", "google", "text-generation"]


def test_gemma3_verbose_vocabulary(gemma_gguf: Path) -> None:
    md = read_gguf_info(gemma_gguf, verbose=True).metadata
    tokens = md["tokenizer.ggml.tokens"]
    assert len(tokens) == 262_144
    assert tokens[:5] == ["<pad>", "<eos>", "<bos>", "<unk>", "<mask>"]
    assert len(md["tokenizer.ggml.scores"]) == len(md["tokenizer.ggml.token_type"]) == 262_144


def test_gemma3_matches_llama_cpp(gemma_gguf: Path) -> None:
    """llama.cpp's own loader agrees on the numbers ocillm will schedule with."""
    from ocillm.runner.llama_loader import open_llama

    llm = open_llama(gemma_gguf, n_ctx=64, n_threads=2, verbose=False, vocab_only=True)
    try:
        info = read_gguf_info(gemma_gguf)
        assert info.vocab_size == llm.n_vocab()
        assert llm.metadata["general.architecture"] == info.architecture
        assert int(llm.metadata["gemma3.context_length"]) == info.context_length
    finally:
        llm.close()


# -- bad input ---------------------------------------------------------------------------------


def test_text_file_is_not_gguf(tmp_path: Path) -> None:
    path = tmp_path / "Modelfile"
    path.write_text("FROM llama3.2\n")
    assert is_gguf(path) is False
    with pytest.raises(BuildError, match=r"Modelfile: not a GGUF file: bad magic"):
        read_gguf_info(path)


def test_empty_and_missing_files(tmp_path: Path) -> None:
    empty = tmp_path / "empty.gguf"
    empty.write_bytes(b"")
    with pytest.raises(BuildError, match="not a GGUF file: empty file"):
        read_gguf_info(empty)
    with pytest.raises(BuildError, match="no such file"):
        read_gguf_info(tmp_path / "missing.gguf")
    with pytest.raises(BuildError, match="directory"):
        read_gguf_info(tmp_path)
    assert is_gguf(tmp_path / "missing.gguf") is False
    assert is_gguf(tmp_path) is False


@pytest.mark.parametrize("keep", [3, 8, 24, 200, 5000])
def test_truncated_header(tiny_gguf: Path, tmp_path: Path, keep: int) -> None:
    path = tmp_path / "cut.gguf"
    path.write_bytes(tiny_gguf.read_bytes()[:keep])
    with pytest.raises(BuildError, match=rf"{path.name}: not a GGUF file: "):
        read_gguf_info(path)


def test_truncated_tensor_data(tiny_gguf: Path, tmp_path: Path) -> None:
    """A partial download: the header is whole but the data is short."""
    path = tmp_path / "partial.gguf"
    data = tiny_gguf.read_bytes()
    path.write_bytes(data[: len(data) - 1000])
    assert is_gguf(path) is True
    with pytest.raises(BuildError, match="truncated: tensor data ends at byte"):
        read_gguf_info(path)


def test_unsupported_version(tiny_gguf: Path, tmp_path: Path) -> None:
    data = bytearray(tiny_gguf.read_bytes())
    data[4:8] = (1).to_bytes(4, "little")
    path = tmp_path / "v1.gguf"
    path.write_bytes(bytes(data))
    with pytest.raises(BuildError, match="unsupported GGUF version 1"):
        read_gguf_info(path)


# -- formatting -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("n", "text"),
    [
        (268_098_176, "268.10M"),
        (8_030_261_248, "8.0B"),
        (1_000_000_000, "1B"),
        (70_553_706_496, "70.6B"),
        (7_000_000, "7M"),
        (1_235_814_432, "1.2B"),
        (139_584, "140K"),
        (999, "999"),
        (0, "0"),
    ],
)
def test_human_number_matches_ollama(n: int, text: str) -> None:
    assert human_number(n) == text


@pytest.mark.parametrize(
    ("ftype", "name"),
    [(0, "F32"), (1, "F16"), (7, "Q8_0"), (15, "Q4_K_M"), (14, "Q4_K_S"), (32, "BF16"),
     (18, "Q6_K"), (19, "IQ2_XXS"), (9999, "unknown")],
)  # fmt: skip
def test_file_type_names(ftype: int, name: str) -> None:
    assert file_type_name(ftype) == name
