#!/usr/bin/env bash
# Install llama-cpp-python with visible progress: its first install compiles llama.cpp, which pip
# (even with -v) would otherwise do in silence for minutes. Usage (the Makefile's setup does it):
#
#   CMAKE_ARGS=... install-llama-cpp.sh PIP REQUIREMENT LOG
#
# Only ninja's "[N/M] file" lines are shown; pip's whole verbose output goes to LOG, and its tail
# is printed if the install fails. A wheel already in pip's cache installs in seconds, silently.
set -euo pipefail
pip=$1 requirement=$2 log=$3

progress() {
  # ninja runs verbose here (full compiler command lines): keep the counter and the source name.
  awk -v note="compiling llama-cpp-python (about 6 minutes on 2 cores; pip caches the wheel)" '
    /^ *\[[0-9]+\/[0-9]+\] / {
      if (!started++) print note
      src = $NF
      for (i = 2; i < NF; i++) if ($i == "-c" || $i == "-o") { src = $(i + 1); if ($i == "-c") break }
      n = split(src, parts, "/")
      print "  " $1 " " parts[n]
      fflush()
    }'
}

status=0
"$pip" install -v "$requirement" 2>&1 | tee "$log" | progress || status=$?
if [ "$status" -ne 0 ]; then
  echo "error: installing $requirement failed (exit $status); the last lines of $log:" >&2
  tail -n 40 "$log" >&2
  exit "$status"
fi
