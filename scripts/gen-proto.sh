#!/usr/bin/env bash
# Generates src/gen from proto/ with buf + ts-proto (both from node_modules: no network).
#   scripts/gen-proto.sh          regenerate
#   scripts/gen-proto.sh --check  fail if the committed src/gen differs from a fresh generation
set -euo pipefail
cd "$(dirname "$0")/.."
if ! find proto -name '*.proto' | grep -q .; then echo "gen-proto: no .proto files"; exit 0; fi
if [[ "${1:-}" == "--check" ]]; then
  tmp="$(mktemp -d)"; trap 'rm -rf "$tmp"' EXIT
  cp -r src/gen "$tmp/committed" 2>/dev/null || mkdir -p "$tmp/committed"
  npx buf generate
  if ! diff -r "$tmp/committed" src/gen >/dev/null; then
    diff -r "$tmp/committed" src/gen | head -40
    echo "gen-proto: src/gen is stale; run scripts/gen-proto.sh and commit the result" >&2
    exit 1
  fi
  echo "gen-proto: src/gen is fresh"
else
  npx buf generate
fi
