#!/usr/bin/env bash
# Fails when a Swift file under Sources/ is longer than 600 lines, and names each one:
# split it by concern (`Type+Concern.swift`) instead.
set -euo pipefail
cd "$(dirname "$0")/.."
limit=600
long="$(find Sources -name '*.swift' -print0 | xargs -0 wc -l | awk -v limit="$limit" '$2 != "total" && $1 > limit { print "  " $2 ": " $1 " lines" }' | sort)"
if [ -n "$long" ]; then
    echo "FAIL: Swift files over $limit lines:" >&2
    echo "$long" >&2
    exit 1
fi
echo "ok: no Swift file under Sources/ is over $limit lines"
