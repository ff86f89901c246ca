#!/usr/bin/env bash
# Crash consistency: N cycles of "concurrent writers across many rooms and one hot room →
# SIGKILL at a random moment → restart → verify". Any violation fails the run.
# Usage: scripts/crash-loop.sh [CYCLES]   (default 100)
set -euo pipefail
cd "$(dirname "$0")/.."
CRASH_CYCLES="${1:-100}" cargo test --release -p liveroom --test crash -- --nocapture 2>&1 | grep -E "crash cycles|test result|panicked"
