#!/usr/bin/env bash
# Debian packages the tests use: Distribution (docker-registry), skopeo, and podman and umoci
# (a modelcar image must mount in a real container engine), and kubectl (`kubectl kustomize`
# renders the deploy/ overlays; no cluster).
set -euo pipefail
need=()
command -v docker-registry >/dev/null 2>&1 || need+=(docker-registry)
command -v skopeo >/dev/null 2>&1 || need+=(skopeo)
command -v podman >/dev/null 2>&1 || need+=(podman)
command -v umoci >/dev/null 2>&1 || need+=(umoci)
command -v kubectl >/dev/null 2>&1 || need+=(kubectl)
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO=sudo; else
    echo "error: missing ${need[*]}; install them as root: apt-get install ${need[*]}" >&2
    exit 1
  fi
else SUDO=""; fi
echo "installing ${need[*]} (apt-get)" >&2
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
