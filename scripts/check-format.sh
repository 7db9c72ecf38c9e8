#!/usr/bin/env bash
# Checks every Swift file against .swift-format (swift-format, which ships with the toolchain);
# fails on any finding. `swift format format -i --recursive --parallel --configuration
# .swift-format Sources Tests Benchmarks Examples Fuzz Plugins Package.swift` fixes most of them.
set -euo pipefail
cd "$(dirname "$0")/.."
swift format lint --strict --parallel --recursive --configuration .swift-format \
    Sources Tests Benchmarks Examples Fuzz Plugins Package.swift
echo "ok: the Swift sources follow .swift-format"
