#!/usr/bin/env bash
# Checks what the light executables link, from the build that just ran (no second build):
# lisactl and the client example must not carry the server (PostgreSQL, SQLite, JWT,
# Hummingbird, Prometheus, swift-crypto, LISAKit itself), LISAOpenAI imports NIOCore
# and Foundation only, and LISAKitTesting imports no Hummingbird.
set -euo pipefail
cd "$(dirname "$0")/.."
bin="$(swift build --show-bin-path)"
forbidden='^(LISAKit|LISAHummingbird|PostgresNIO|SQLiteNIO|CSQLite|JWTKit|Hummingbird[A-Za-z]*|Prometheus|Crypto|_CryptoExtras|ZIPFoundation|X509)$'
status=0
for product in lisactl ClientScript; do
    list="$bin/$product.product/Objects.LinkFileList"
    [ -f "$list" ] || { echo "no link list for $product (build it first)" >&2; exit 1; }
    modules="$(sed -E 's#.*/([^/]+)\.build/.*#\1#' "$list" | sort -u)"
    bad="$(grep -E "$forbidden" <<<"$modules" || true)"
    if [ -n "$bad" ]; then
        echo "FAIL: $product links server modules: $(tr '\n' ' ' <<<"$bad")" >&2
        status=1
    else
        echo "ok: $product links $(wc -l <<<"$modules") modules, none of the server's"
    fi
done
imports="$(grep -h -E '^(@_exported |public |package |internal )?import ' Sources/LISAOpenAI/*.swift | awk '{print $NF}' | sort -u | tr '\n' ' ')"
if [ "$imports" != "Foundation NIOCore " ]; then
    echo "FAIL: LISAOpenAI imports $imports(only Foundation and NIOCore are allowed)" >&2
    status=1
else
    echo "ok: LISAOpenAI imports $imports"
fi
# LISAKitTesting (InMemoryProvider, ManualClock) is for tests of LISAKit alone: no HTTP server.
testing="$(grep -h -E '^(@_exported |public |package |internal )?import ' Sources/LISAKitTesting/*.swift | awk '{print $NF}' | sort -u)"
bad="$(grep -E '^(LISAHummingbird|Hummingbird[A-Za-z]*)$' <<<"$testing" || true)"
if [ -n "$bad" ]; then
    echo "FAIL: LISAKitTesting imports $(tr '\n' ' ' <<<"$bad")(its HTTP fakes belong in LISAHummingbirdTesting)" >&2
    status=1
else
    echo "ok: LISAKitTesting imports $(tr '\n' ' ' <<<"$testing")"
fi
exit $status
