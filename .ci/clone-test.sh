#!/usr/bin/env bash
# The test command from a second clone in an empty temporary folder: no sibling shared/, no
# .venv, nothing but the repository's own files (issue: tests that need nothing outside the repo).
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
git clone --quiet "$repo" "$tmp/clone"
test ! -e "$tmp/shared"
echo "make test from a fresh clone in $tmp/clone" >&2
make -C "$tmp/clone" test
