#!/usr/bin/env bash
# Build llama.cpp's own llama-server, the anchor of bench/bench_serve.py, from the llama.cpp sources
# vendored in the sdist of the llama-cpp-python that the venv has installed, and cache the binary
# outside the repository:
#
#     bench/build_llama_server.sh [PYTHON]      # PYTHON defaults to .venv/bin/python
#     CUDA=1 bench/build_llama_server.sh        # a CUDA build, for bench_serve.py --gpu
#
# The binary lands in ${OCILLM_BENCH_CACHE:-~/.cache/ocillm-bench}/llama-server-<version>/llama-server
# (llama-server-<version>-cuda/ with CUDA=1), where bench_serve.py looks for it (or pass
# --llama-server PATH there). A second run with the
# binary present does nothing. Takes several minutes on 2 cores (JOBS=N to change -j2). This is a
# benchmark helper: not part of the test suite or CI.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python="${1:-$here/.venv/bin/python}"
version="$("$python" -c 'import importlib.metadata as m; print(m.version("llama-cpp-python"))')"
cache="${OCILLM_BENCH_CACHE:-$HOME/.cache/ocillm-bench}"
dest="$cache/llama-server-$version${CUDA:+-cuda}"
if [[ -x "$dest/llama-server" ]]; then
    echo "$dest/llama-server"
    exit 0
fi

src="$cache/src-$version"
mkdir -p "$src"
if [[ ! -d "$src/llama_cpp_python-$version" ]]; then
    "$python" -m pip download --no-binary :all: --no-deps "llama-cpp-python==$version" -d "$src"
    tar -xzf "$src/llama_cpp_python-$version.tar.gz" -C "$src"
fi
llama="$src/llama_cpp_python-$version/vendor/llama.cpp"
[[ -f "$llama/CMakeLists.txt" ]] || { echo "no vendor/llama.cpp in the sdist" >&2; exit 1; }

# CPU build for this machine (GGML_NATIVE, as llama-cpp-python's own wheel build for this machine
# does); CUDA only when asked (CUDA=1; nvcc alone does not mean a GPU is here). Static, so the binary needs no .so beside it.
# No web UI (no npm, no download of its assets) and no HTTPS client: the benchmark needs neither.
# (LLAMA_CURL is deprecated and ignored in this llama.cpp; LLAMA_OPENSSL replaced it.)
opts=(-DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=ON -DBUILD_SHARED_LIBS=OFF
      -DLLAMA_BUILD_SERVER=ON -DLLAMA_BUILD_TOOLS=ON -DLLAMA_BUILD_TESTS=OFF
      -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_OPENSSL=OFF -DLLAMA_BUILD_UI=OFF
      -DLLAMA_USE_PREBUILT_UI=OFF)
build="$src/build"
if [[ -n "${CUDA:-}" ]]; then
    opts+=(-DGGML_CUDA=ON)
    build="$src/build-cuda"
fi
cmake -S "$llama" -B "$build" "${opts[@]}" ${CMAKE_ARGS:-}
cmake --build "$build" --target llama-server -j "${JOBS:-2}"
mkdir -p "$dest"
cp "$build/bin/llama-server" "$dest/llama-server"
echo "$dest/llama-server"
