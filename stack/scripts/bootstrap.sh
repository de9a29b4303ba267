#!/usr/bin/env bash
# Bootstrap a fresh machine for CheckoutPlatform: check the toolchains every later step needs
# (Go, Java 17, Maven, Python 3.11+), install uv, and sync the Python workspace from uv.lock.
# Idempotent and quiet when everything is already in place.
set -euo pipefail

UV_VERSION="0.13.9"
cd "$(dirname "$0")/../.."

need_apt=()
command -v java >/dev/null 2>&1 || need_apt+=(openjdk-17-jre-headless)
command -v mvn >/dev/null 2>&1 || need_apt+=(maven)
command -v runuser >/dev/null 2>&1 || need_apt+=(util-linux)
if ((${#need_apt[@]})); then
  echo "bootstrap: installing ${need_apt[*]} with apt-get" >&2
  apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need_apt[@]}" >/dev/null
fi

if ! command -v go >/dev/null 2>&1; then
  if [[ -x /usr/local/go/bin/go ]]; then
    export PATH="/usr/local/go/bin:$PATH"
  else
    echo "bootstrap: the Go toolchain (1.24 or newer) is required to build the control plane; install it and retry" >&2
    exit 1
  fi
fi

if ! command -v uv >/dev/null 2>&1 || [[ "$(uv --version | awk '{print $2}')" != "$UV_VERSION" ]]; then
  echo "bootstrap: installing uv $UV_VERSION with pip" >&2
  python3 -m pip install --quiet --disable-pip-version-check "uv==$UV_VERSION"
fi

uv sync --frozen --quiet
