#!/usr/bin/env bash
# Regenerates webhook-config/ from charts/certweave with the chart's default
# values (release certweave, namespace certweave):
#
#   bash webhook-config/generate.sh
#
# Renders with `helm template` (helm on PATH: `bash e2e/assets.sh` builds it,
# `eval "$(bash e2e/assets.sh --print)"` puts it there). Hand-written files (namespace.yaml) and
# crds.yaml (from `certweave crds`) are left alone.
# tests/packaging/test_sync.py fails when the committed files differ.
set -euo pipefail
cd "$(dirname "$0")/.."
exec python3 tests/packaging/helmrender.py generate webhook-config
