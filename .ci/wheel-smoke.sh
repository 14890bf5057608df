#!/usr/bin/env bash
# The light install, for real: build the wheel, install it WITHOUT extras into a fresh venv, and
# from a folder outside the repository lint, build, push and pull a tiny model through a
# Distribution registry this script starts. The serve extra (llama.cpp, FastAPI, uvicorn, NVML)
# must be absent there, and `ocillm serve` must say in one line what to install.
#
# Needs: the repository's .venv (its `build` package, from the test extra) and docker-registry
# (.ci/system-deps.sh). Prints the wall time of the wheel install (pip's cache is warm after
# `make setup`).
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
builder="${WHEEL_SMOKE_BUILDER:-$repo/.venv/bin/python}"
python="${PYTHON:-python3}"
work="$(mktemp -d)"
registry_pid=""

cleanup() {
  if [ -n "$registry_pid" ]; then  # by its PID, never by name
    kill "$registry_pid" 2>/dev/null || true
    wait "$registry_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT
say() { echo "wheel-smoke: $*" >&2; }
fail() { echo "wheel-smoke: FAILED: $*" >&2; exit 1; }

registry_bin="$(command -v docker-registry || true)"
[ -n "$registry_bin" ] || fail "docker-registry is not installed (run .ci/system-deps.sh)"

say "building the wheel"
# From a copy of what git would check out (tracked and unignored files): a stale build/ or a
# stray file in the working folder cannot reach the wheel.
mkdir "$work/src"
git -C "$repo" ls-files -z --cached --others --exclude-standard |
  tar -C "$repo" --null --ignore-failed-read -T - -cf - 2>/dev/null | tar -C "$work/src" -xf -
"$builder" -m build --wheel --outdir "$work/dist" "$work/src" >"$work/build.log" 2>&1 ||
  { tail -n 40 "$work/build.log" >&2; fail "python -m build --wheel"; }
wheel="$(ls "$work"/dist/ocillm-*.whl)"
"$builder" - "$wheel" <<'EOF' || fail "the wheel lacks the grammars"
import sys, zipfile
names = set(zipfile.ZipFile(sys.argv[1]).namelist())
missing = {"ocillm/grammar/modelfile.lark", "ocillm/grammar/gotemplate.lark"} - names
sys.exit(f"missing from the wheel: {sorted(missing)}" if missing else 0)
EOF

"$python" -m venv "$work/venv"
bin="$work/venv/bin"
start=$(date +%s%N)
"$bin/pip" install --quiet --disable-pip-version-check "$wheel"
took=$(( ($(date +%s%N) - start) / 1000000 ))
say "pip install $(basename "$wheel") (no extras): $((took / 1000)).$(printf %03d $((took % 1000))) s"

# Outside the repository, with nothing of the caller's ocillm or registry settings.
while read -r name; do unset "$name"; done < <(compgen -e | grep -E '^(OCILLM_|REGISTRY_)' || true)
export OCILLM_HOME="$work/home" DOCKER_CONFIG="$work/docker"
mkdir -p "$work/project" "$work/docker"
cd "$work/project"
[ "$("$bin/python" -c 'import ocillm; print(ocillm.__file__)')" = \
  "$("$bin/python" -c 'import sysconfig; print(sysconfig.get_path("purelib"))')/ocillm/__init__.py" ] ||
  fail "ocillm is not imported from the fresh venv"

for module in llama_cpp fastapi uvicorn pynvml httpx; do
  if "$bin/python" -c "import $module" 2>/dev/null; then fail "$module is installed without the serve extra"; fi
done
set +e
serve_err="$("$bin/ocillm" serve 2>&1 >/dev/null)"
serve_rc=$?
set -e
[ "$serve_rc" -ne 0 ] || fail "ocillm serve exited 0 without the serve extra"
[ "$(printf '%s\n' "$serve_err" | wc -l)" -eq 1 ] && [[ "$serve_err" == *"pip install 'ocillm[serve]'"* ]] ||
  fail "ocillm serve without the extra printed: $serve_err"
say "serve without the extra: $serve_err"

# A Distribution registry on a free loopback port, with none of the caller's REGISTRY_*
# variables (Distribution reads them as configuration, e.g. REGISTRY_AUTH_FILE).
port="$("$bin/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
mkdir -p "$work/registry/storage"
"$bin/python" - "$repo/registry-fixtures/config-noauth.yml" "$work/registry" "$port" <<'EOF'
import pathlib, string, sys
template, folder, port = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2]), sys.argv[3]
text = string.Template(template.read_text()).substitute(
    port=port, storage=folder / "storage", secret="wheel-smoke"
)
(folder / "config.yml").write_text(text)
EOF
"$registry_bin" serve "$work/registry/config.yml" >"$work/registry/log" 2>&1 &
registry_pid=$!
"$bin/python" - "$port" <<'EOF' || { cat "$work/registry/log" >&2; fail "docker-registry did not start"; }
import sys, time, urllib.request
deadline = time.monotonic() + 20
while True:
    try:
        urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/v2/", timeout=2).close()
        break
    except OSError:
        if time.monotonic() > deadline:
            sys.exit(1)
        time.sleep(0.1)
EOF

"$bin/python" "$repo/registry-fixtures/tiny_gguf.py" tiny.gguf >/dev/null
printf 'FROM ./tiny.gguf\nSYSTEM "Be brief."\n' >Modelfile
ref="127.0.0.1:$port/smoke/tiny:1"
"$bin/ocillm" lint
digest="$("$bin/ocillm" build -t "$ref" --quiet)"
"$bin/ocillm" push "$ref"
"$bin/ocillm" rm "$ref" >/dev/null
pulled="$("$bin/ocillm" pull "$ref" --quiet)"
[ "$pulled" = "$digest" ] || fail "pulled $pulled, built $digest"
[ "$("$bin/ocillm" show "$ref" --system)" = "Be brief." ] || fail "show after pull"
say "ok: lint, build, push, pull $ref ($digest) with the base install"
