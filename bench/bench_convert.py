"""Convert a ~500 MB bf16 llama-architecture safetensors checkpoint (generated here) to GGUF.

Prints the checkpoint's size, the time to hash it with hashlib (reading every byte once: the
floor for any converter), the conversion's time and peak RSS (the library call in a child
process, so its RSS is its own), the full ``ocillm build`` CLI time, and whether two builds in
two fresh stores give the same image digest.

    .venv/bin/python bench/bench_convert.py [--layers 16] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

import convert_support as cs  # noqa: E402  (the tests' tokenizer fixture)


def config(layers: int, vocab: int) -> dict[str, object]:
    return {
        "architectures": ["LlamaForCausalLM"],
        "hidden_size": 1024,
        "intermediate_size": 2816,
        "num_hidden_layers": layers,
        "num_attention_heads": 16,
        "num_key_value_heads": 4,
        "max_position_embeddings": 4096,
        "rms_norm_eps": 1e-5,
        "rope_theta": 500000.0,
        "vocab_size": vocab,
        "tie_word_embeddings": False,
        "torch_dtype": "bfloat16",
    }


def shapes(cfg: dict[str, int]) -> dict[str, tuple[int, ...]]:
    d, f, v = cfg["hidden_size"], cfg["intermediate_size"], cfg["vocab_size"]
    kv = cfg["num_key_value_heads"] * d // cfg["num_attention_heads"]
    out: dict[str, tuple[int, ...]] = {
        "model.embed_tokens.weight": (v, d),
        "lm_head.weight": (v, d),
        "model.norm.weight": (d,),
    }
    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}."
        out |= {
            p + "input_layernorm.weight": (d,),
            p + "post_attention_layernorm.weight": (d,),
            p + "self_attn.q_proj.weight": (d, d),
            p + "self_attn.k_proj.weight": (kv, d),
            p + "self_attn.v_proj.weight": (kv, d),
            p + "self_attn.o_proj.weight": (d, d),
            p + "mlp.gate_proj.weight": (f, d),
            p + "mlp.up_proj.weight": (f, d),
            p + "mlp.down_proj.weight": (d, f),
        }
    return out


def write_checkpoint(folder: Path, layers: int) -> int:
    """Stream random bf16 tensors into one safetensors file (header first, then each tensor)."""
    folder.mkdir(parents=True)
    cs.write_bpe_tokenizer(folder)
    cfg = config(layers, 32000)
    (folder / "config.json").write_text(json.dumps(cfg))
    table = shapes(cfg)  # type: ignore[arg-type]
    header: dict[str, object] = {}
    offset = 0
    for name, shape in table.items():
        n = 2 * int(np.prod(shape))
        header[name] = {"dtype": "BF16", "shape": list(shape), "data_offsets": [offset, offset + n]}
        offset += n
    head = json.dumps(header).encode()
    head += b" " * (-len(head) % 8)
    rng = np.random.default_rng(0)
    with open(folder / "model.safetensors", "wb") as f:
        f.write(len(head).to_bytes(8, "little") + head)
        for shape in table.values():
            values = rng.standard_normal(shape, dtype=np.float32) * 0.02
            f.write(cs.to_bf16_bits(values).tobytes())
    return sum(p.stat().st_size for p in folder.iterdir())


# Peak RSS counts the checkpoint's pages mapped by numpy.memmap (file-backed, the page cache's);
# RssAnon, sampled every 10 ms, is the memory the conversion itself holds.
CHILD = """
import re, resource, sys, threading, time
from pathlib import Path
from ocillm.convert import convert_checkpoint
peak = [0]
def sample():
    while True:
        text = Path("/proc/self/status").read_text()
        peak[0] = max(peak[0], int(re.search(r"RssAnon:\\s+(\\d+)", text).group(1)))
        time.sleep(0.01)
threading.Thread(target=sample, daemon=True).start()
t = time.perf_counter()
convert_checkpoint(Path(sys.argv[1]), Path(sys.argv[2]))
print(time.perf_counter() - t, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, peak[0])
"""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--layers", type=int, default=16)
    ap.add_argument("--workdir", type=Path, default=None)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        root = Path(tmp)
        ckpt = root / "checkpoint"
        size = write_checkpoint(ckpt, args.layers)
        os.sync()
        print(f"checkpoint: {size / 1e6:.0f} MB (bf16, {args.layers} layers)")

        t = time.perf_counter()
        h = hashlib.sha256()
        with open(ckpt / "model.safetensors", "rb") as f:
            while chunk := f.read(1 << 20):
                h.update(chunk)
        hashed = time.perf_counter() - t
        print(f"hashlib sha256 of it: {hashed:.2f} s")

        out = subprocess.run(
            [sys.executable, "-c", CHILD, str(ckpt), str(root / "out.gguf")],
            check=True, capture_output=True, text=True,
        ).stdout.split()  # fmt: skip
        seconds, rss_kib, anon_kib = float(out[0]), int(out[1]), int(out[2])
        gguf_size = (root / "out.gguf").stat().st_size
        print(
            f"convert (library): {seconds:.2f} s ({seconds / hashed:.1f}x hashlib), peak RSS "
            f"{rss_kib / 1024:.0f} MB = {rss_kib * 1024 / size:.2f}x the checkpoint; "
            f"GGUF {gguf_size / 1e6:.0f} MB"
        )
        print(
            f"  of which anonymous (the conversion's own memory, not mapped checkpoint pages): "
            f"peak {anon_kib / 1024:.0f} MB = {anon_kib * 1024 / size:.2f}x the checkpoint"
        )

        (root / "Modelfile").write_text(f"FROM {ckpt}\n")
        digests = []
        for n in (1, 2):
            env = {**os.environ, "OCILLM_MODELS": str(root / f"store{n}")}
            t = time.perf_counter()
            subprocess.run(
                [str(Path(sys.executable).parent / "ocillm"), "build", "-q", "-f",
                 str(root / "Modelfile"), "-t", "bench:1"],
                check=True, env=env, capture_output=True,
            )  # fmt: skip
            elapsed = time.perf_counter() - t
            index = json.loads((root / f"store{n}" / "index.json").read_text())
            digests.append(index["manifests"][0]["digest"])
            print(f"ocillm build (CLI, store {n}): {elapsed:.2f} s")
        rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        same = "same" if digests[0] == digests[1] else "DIFFERENT"
        print(f"image digests: {same} ({digests[0]}); largest child peak RSS {rss / 1024:.0f} MB")


if __name__ == "__main__":
    main()
