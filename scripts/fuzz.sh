#!/usr/bin/env bash
# Builds LISA's libFuzzer binary from the parsers' own sources (coverage-instrumented, with
# AddressSanitizer) against the debug build's NIOCore, then runs each target for a bounded
# time on the seed corpus in Fuzz/corpus/<target>. Fails on a crash, a broken invariant,
# a slow input (-timeout) or one over the memory budget (-rss_limit_mb).
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]     (default 30 s, every target)
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-30}"
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(json sse multipart chunker text upstream zip)

debug="$(swift build --show-bin-path)"
out=.build/fuzz
mkdir -p "$out"
sources=(
    Sources/LISAOpenAI/*.swift
    Sources/LISAAPI/LISAError.swift
    Sources/LISAAPI/Chunker.swift
    Sources/LISAKit/RAG/DocumentParser+Text.swift
    Sources/LISAKit/Gateway/MultipartForm.swift
    Sources/LISAKit/Providers/UpstreamConnectionStateMachine.swift
    Sources/LISAKit/Providers/UpstreamHeadLimits.swift
    Sources/LISAKit/RAG/ZipStructure.swift
    Fuzz/FuzzTargets.swift Fuzz/Stubs.swift Fuzz/UpstreamFuzz.swift
)
objects=()
add_objects() {  # every object file under a build folder (names may have spaces)
    [ -d "$1" ] || return 0
    while IFS= read -r -d '' object; do objects+=("$object"); done < <(find "$1" -name '*.o' -print0)
}
for module in NIOCore NIOHTTP1 NIOEmbedded _NIODataStructures _NIOBase64 NIOConcurrencyHelpers Atomics DequeModule InternalCollectionsUtilities ContainersPreview; do
    add_objects "$debug/$module.build"
done
maps=()
for c in CNIOLLHTTP CNIOLinux CNIODarwin CNIOWindows CNIOWASI CNIOAtomics CNIOFreeBSD CNIOOpenBSD _AtomicsShims; do
    [ -d "$debug/$c.build" ] || continue
    add_objects "$debug/$c.build"
    [ -f "$debug/$c.build/module.modulemap" ] && maps+=(-Xcc "-fmodule-map-file=$debug/$c.build/module.modulemap")
done
# C modules whose module maps live with their sources rather than in the build folder.
for map in .build/checkouts/swift-atomics/Sources/_AtomicsShims/include/module.modulemap; do
    [ -f "$map" ] && maps+=(-Xcc "-fmodule-map-file=$map")
done
rm -f "$out/lisa-fuzz"  # a stale binary must not hide a failed build
swiftc -parse-as-library -module-name LISAFuzz -package-name lisa_swift -sanitize=fuzzer,address -Onone -g \
    -I "$debug/Modules" "${maps[@]}" \
    "${sources[@]}" "${objects[@]}" -o "$out/lisa-fuzz" 2>&1 | grep -v "warning:" || true
[ -x "$out/lisa-fuzz" ] || { echo "fuzz build failed" >&2; exit 1; }

status=0
for target in "${targets[@]}"; do
    corpus="$out/corpus-$target"
    mkdir -p "$corpus"
    echo "== fuzz $target for ${seconds}s"
    if ! SWIFT_BACKTRACE=enable=no LISA_FUZZ_TARGET="$target" "$out/lisa-fuzz" "$corpus" "Fuzz/corpus/$target" \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
        -artifact_prefix="$out/crash-$target-" -print_final_stats=1 2>"$out/$target.log"; then
        echo "fuzz target $target failed:" >&2
        tail -40 "$out/$target.log" >&2
        status=1
    fi
    grep -E "stat::number_of_executed_units|stat::peak_rss_mb" "$out/$target.log" | sed "s/^/  $target /"
done
exit $status
