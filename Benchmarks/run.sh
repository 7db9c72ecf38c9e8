#!/usr/bin/env bash
# Gateway benchmark: LISAServe against nginx (the floor) and LiteLLM (the peer), in one run.
#   Benchmarks/run.sh [--duration S] [--memory] [--write-doc] [--skip-litellm] [--usage-variants] [--tracing-variant] [--client-variants]
# Installs what it needs (nginx, wrk, hey from apt; LiteLLM in .bench/litellm), builds the
# release binaries, then runs Benchmarks/bench.py. Only loopback traffic; bounded in time.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
for tool in nginx wrk hey; do command -v "$tool" >/dev/null || need+=("$tool"); done
if [ ${#need[@]} -gt 0 ]; then
    apt-get update -q && apt-get install -y -q "${need[@]}"
fi
if [[ " $* " != *" --skip-litellm "* ]] && [ ! -x .bench/litellm/bin/litellm ]; then
    mkdir -p .bench
    python3 -m venv .bench/litellm
    .bench/litellm/bin/pip install -q --disable-pip-version-check 'litellm[proxy]'
fi
if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
.venv/bin/pip install -q --disable-pip-version-check httpx

swift build -c release --product LISAServe
swift build -c release --product lisa-fake-upstream
exec .venv/bin/python Benchmarks/bench.py --bin "$(swift build -c release --show-bin-path)" "$@"
