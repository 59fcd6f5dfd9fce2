#!/usr/bin/env bash
# Builds the cert-manager controller launcher that benches/controller_memory.sh
# compares certweave with: benches/support/cert-manager-launcher/main.go
# (read its header: cert-manager v1.21.2's default controllers, run from the
# github.com/cert-manager/cert-manager module's packages), in a throwaway Go
# module, with modules from the Go module proxy only.
#
# Output: ~/.cache/certweave-e2e/tools/cert-manager-$VERSION/cert-manager-controller
# (kept and reused; FORCE=1 rebuilds), with the main.go and go.mod it was
# built from beside it.
#
# Usage: bash benches/support/build-cert-manager.sh
# Env:   VERSION=v1.21.2, FORCE=1.
# Needs: go (1.26+, GOTOOLCHAIN=local), the Go module proxy. Takes ~4 min on
#        2 cores the first time.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
VERSION=${VERSION:-v1.21.2}
OUT=$HOME/.cache/certweave-e2e/tools/cert-manager-$VERSION
if [ -x "$OUT/cert-manager-controller" ] && [ "${FORCE:-}" != 1 ]; then
  echo "$OUT/cert-manager-controller (kept; FORCE=1 rebuilds)"
  exit 0
fi
command -v go >/dev/null || { echo "build-cert-manager: go is not installed" >&2; exit 2; }
export GOTOOLCHAIN=local GOFLAGS=-mod=mod CGO_ENABLED=0
MOD=$(mktemp -d)
trap 'rm -rf "$MOD"' EXIT
cp "$HERE/cert-manager-launcher/main.go" "$MOD/"
cat >"$MOD/go.mod" <<GOMOD
module certweave.bench/cert-manager-launcher

go 1.26.0
GOMOD
cd "$MOD"
timeout 900 go get "github.com/cert-manager/cert-manager@$VERSION"
mkdir -p "$OUT"
timeout 1800 go build -trimpath -o "$OUT/cert-manager-controller.new" .
mv "$OUT/cert-manager-controller.new" "$OUT/cert-manager-controller"
cp main.go go.mod "$OUT/"
echo "$OUT/cert-manager-controller"
