"""The tokenizer as llama.cpp reads it: ``tokenizer.ggml.*`` keys and the chat template.

Two kinds are read. A SentencePiece ``tokenizer.model`` (Llama 2, Mistral 7B, Gemma) becomes
llama.cpp's ``llama`` tokenizer; a byte-level BPE ``tokenizer.json`` (Llama 3, Qwen) becomes its
``gpt2`` tokenizer, with ``tokenizer.ggml.pre`` naming the pre-tokenizer regex llama.cpp must
run. Special token ids, add-BOS/EOS flags, merges and the chat template come from gguf-py's
``SpecialVocab`` (llama.cpp's converter's own reader of tokenizer_config.json).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gguf

from ocillm.convert.checkpoint import ConvertError, read_json

# The pre-tokenizer regexes of tokenizer.json's Split step, by llama.cpp's name for them.
# The regex is what splits text before BPE; llama.cpp implements each under a fixed name.
_LLAMA3_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|"
    r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
_QWEN2_SPLIT = _LLAMA3_SPLIT.replace(r"\p{N}{1,3}", r"\p{N}")
PRE_TOKENIZERS = {_LLAMA3_SPLIT: "llama-bpe", _QWEN2_SPLIT: "qwen2"}

INSTALL_HINT = "pip install 'ocillm[convert]'"


@dataclass(frozen=True)
class Vocabulary:
    model: str  # tokenizer.ggml.model
    pre: str  # tokenizer.ggml.pre
    tokens: list[bytes]
    scores: list[float] | None
    types: list[int]
    add_space_prefix: bool | None = None
    remove_extra_whitespaces: bool | None = None

    def token_text(self, token_id: int) -> str:
        return self.tokens[token_id].decode("utf-8", errors="replace")


def read_vocabulary(folder: Path, vocab_size: int | None) -> Vocabulary:
    if (folder / "tokenizer.model").is_file():
        return _sentencepiece(folder, vocab_size)
    if (folder / "tokenizer.json").is_file():
        return _bpe(folder, vocab_size)
    raise ConvertError(f"{folder}: no tokenizer (tokenizer.json or tokenizer.model)")


def write_vocabulary(
    writer: gguf.GGUFWriter, folder: Path, vocab: Vocabulary, special: gguf.SpecialVocab
) -> None:
    writer.add_tokenizer_model(vocab.model)
    writer.add_tokenizer_pre(vocab.pre)
    writer.add_token_list(vocab.tokens)
    if vocab.scores is not None:
        writer.add_token_scores(vocab.scores)
    writer.add_token_types(vocab.types)
    if vocab.add_space_prefix is not None:
        writer.add_add_space_prefix(vocab.add_space_prefix)
    if vocab.remove_extra_whitespaces is not None:
        writer.add_remove_extra_whitespaces(vocab.remove_extra_whitespaces)
    special.add_to_gguf(writer, quiet=True)


def special_vocab(folder: Path, vocab: Vocabulary) -> gguf.SpecialVocab:
    # gguf-py logs its guesses about post-processor templates as warnings; they are not the
    # user's to act on, and a build's output is one line per step.
    log = logging.getLogger("gguf")
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        return gguf.SpecialVocab(
            folder, load_merges=vocab.model == "gpt2", n_vocab=len(vocab.tokens)
        )
    finally:
        log.setLevel(level)


def _padded(tokens: list[bytes], types: list[int], scores: list[float] | None, size: int) -> None:
    """Pad to the embedding's row count with unused tokens, as llama.cpp's converter does."""
    for i in range(len(tokens), size):
        tokens.append(f"[PAD{i}]".encode())
        types.append(gguf.TokenType.UNUSED)
        if scores is not None:
            scores.append(-1000.0)


def _added_tokens(folder: Path) -> dict[int, tuple[str, bool]]:
    """id -> (content, special) from tokenizer_config.json's added_tokens_decoder."""
    path = folder / "tokenizer_config.json"
    if not path.is_file():
        return {}
    decoder = read_json(path).get("added_tokens_decoder", {})
    out: dict[int, tuple[str, bool]] = {}
    if isinstance(decoder, Mapping):
        for key, entry in decoder.items():
            if isinstance(entry, Mapping) and isinstance(entry.get("content"), str):
                out[int(key)] = (entry["content"], bool(entry.get("special", False)))
    return out


def _bpe(folder: Path, vocab_size: int | None) -> Vocabulary:
    data = json.loads((folder / "tokenizer.json").read_text(encoding="utf-8"))
    model: Mapping[str, Any] = data.get("model") or {}
    decoder = (data.get("decoder") or {}).get("type")
    if model.get("type") != "BPE" or model.get("byte_fallback") or decoder != "ByteLevel":
        raise ConvertError(
            f"{folder}/tokenizer.json: only byte-level BPE tokenizers convert without "
            "tokenizer.model (this one is "
            f"{model.get('type')} with a {decoder} decoder; add the tokenizer.model file)"
        )
    by_id: dict[int, str] = {int(i): t for t, i in model["vocab"].items()}
    added: dict[int, tuple[str, bool]] = {}
    for entry in data.get("added_tokens") or []:
        added[int(entry["id"])] = (entry["content"], bool(entry.get("special", False)))
    for token_id, value in _added_tokens(folder).items():
        added.setdefault(token_id, value)
    size = max([*by_id, *added], default=-1) + 1
    tokens: list[bytes] = []
    types: list[int] = []
    for i in range(size):
        if i in added:
            text, is_special = added[i]
            tokens.append(text.encode("utf-8"))
            types.append(gguf.TokenType.CONTROL if is_special else gguf.TokenType.USER_DEFINED)
        elif i in by_id:
            tokens.append(by_id[i].encode("utf-8"))
            types.append(gguf.TokenType.NORMAL)
        else:
            tokens.append(f"[PAD{i}]".encode())
            types.append(gguf.TokenType.UNUSED)
    _padded(tokens, types, None, vocab_size or 0)
    return Vocabulary("gpt2", _pre_tokenizer(folder, data), tokens, None, types)


def _pre_tokenizer(folder: Path, data: Mapping[str, Any]) -> str:
    pre = data.get("pre_tokenizer") or {}
    steps = pre.get("pretokenizers", [pre]) if pre.get("type") == "Sequence" else [pre]
    splits = [s.get("pattern", {}).get("Regex") for s in steps if s and s.get("type") == "Split"]
    if not splits:
        if any(s.get("type") == "ByteLevel" and s.get("use_regex", True) for s in steps if s):
            return "gpt2"
        raise ConvertError(f"{folder}/tokenizer.json: no pre-tokenizer this converter knows")
    for regex in splits:
        if regex in PRE_TOKENIZERS:
            return PRE_TOKENIZERS[regex]
    raise ConvertError(
        f"{folder}/tokenizer.json: pre-tokenizer regex {splits[0]!r} is not one llama.cpp "
        "implements under a name ocillm knows (Llama 3's, Qwen 2's, GPT-2's)"
    )


def _sentencepiece(folder: Path, vocab_size: int | None) -> Vocabulary:
    try:
        from sentencepiece import SentencePieceProcessor
    except ImportError:
        raise ConvertError(
            f"{folder}/tokenizer.model: reading SentencePiece tokenizers needs the convert "
            f"extra: {INSTALL_HINT}"
        ) from None
    sp = SentencePieceProcessor()
    sp.LoadFromFile(str(folder / "tokenizer.model"))
    tokens: list[bytes] = []
    scores: list[float] = []
    types: list[int] = []
    for i in range(sp.vocab_size()):
        tokens.append(sp.IdToPiece(i).encode("utf-8"))
        scores.append(float(sp.GetScore(i)))
        if sp.IsUnknown(i):
            types.append(gguf.TokenType.UNKNOWN)
        elif sp.IsControl(i):
            types.append(gguf.TokenType.CONTROL)
        elif sp.IsUnused(i):
            types.append(gguf.TokenType.UNUSED)
        elif sp.IsByte(i):
            types.append(gguf.TokenType.BYTE)
        else:
            types.append(gguf.TokenType.NORMAL)
    extra_path = folder / "added_tokens.json"
    if extra_path.is_file():
        for text, token_id in sorted(read_json(extra_path).items(), key=lambda kv: kv[1]):
            if int(token_id) == len(tokens):
                tokens.append(text.encode("utf-8"))
                scores.append(-1000.0)
                types.append(gguf.TokenType.USER_DEFINED)
    for token_id, (text, is_special) in _added_tokens(folder).items():
        if token_id < len(tokens):
            tokens[token_id] = text.encode("utf-8")
            types[token_id] = gguf.TokenType.CONTROL if is_special else gguf.TokenType.USER_DEFINED
    _padded(tokens, types, scores, vocab_size or 0)
    # The normalizer's flags, observed: a dummy prefix shows as a leading "▁" on "a", and
    # removed extra whitespace as a round trip that loses a space.
    add_prefix = sp.EncodeAsPieces("a")[0].startswith("\u2581")
    removes_spaces = sp.DecodeIds(sp.EncodeAsIds("a  b")) == "a b"
    return Vocabulary("llama", "default", tokens, scores, types, add_prefix, removes_spaces)
