#!/usr/bin/env bash
# Builds aralez (release) and runs it on examples/: http://localhost:8080/ is routed through the
# proxy to the built-in file server serving examples/www. Ctrl-C stops it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh cmake build-essential pkg-config
cargo build --release
./target/release/aralez check --main examples/main.yaml
echo
echo "Aralez demo: open http://localhost:8080/  (admin: http://127.0.0.1:3000/config/status; Ctrl-C to stop)"
echo
exec ./target/release/aralez -c examples/main.yaml
