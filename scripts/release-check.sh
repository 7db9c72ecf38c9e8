#!/usr/bin/env bash
# Proves a release bundle runs where no Swift exists (run as root, before a release and
# whenever packaging changes):
#
#   scripts/release-check.sh [TARBALL]     (default: the newest dist/lisa-*-linux-<arch>.tar.gz)
#
# 1. the .sha256 matches, and the .sig verifies with signify-openbsd when there is one
#    (public key: LISA_SIGNING_PUBKEY, or <LISA_SIGNING_KEY without .sec>.pub; a .sig without
#    a key to check it, or LISA_REQUIRE_SIGNATURE=1 without a .sig, fails);
# 2. a minimal Debian bookworm root filesystem (debootstrap minbase, cached by
#    scripts/debian-rootfs.sh) holds no Swift; the bundle is unpacked in it at /opt/lisa;
# 3. inside the chroot: ldd of both binaries resolves only to the C/C++ runtime libraries of
#    minbase; --version names the bundle's version and commit; LISAServe --check-config
#    accepts every example configuration; the SBOM is CycloneDX with the Swift packages;
# 4. LISAServe runs in the chroot as an unprivileged user with an empty environment
#    (env -i, LD_LIBRARY_PATH empty), in front of lisa-fake-upstream running on the host
#    (the debug build's, or LISA_FAKE_UPSTREAM); lisactl in the chroot and the openai SDK
#    on the host (.venv) chat through it; SIGTERM stops it with exit status 0.
# Exits non-zero on the first failure. Needs: root, debootstrap (first run), signify-openbsd.
set -euo pipefail

root="$(git -C "$(dirname "$0")/.." rev-parse --show-toplevel)"
cd "$root"
start=$(date +%s)
fail() { echo "release-check: FAIL: $*" >&2; exit 1; }
step() { echo "== $*"; }

[ "$(id -u)" = 0 ] || fail "must run as root (chroot, mount)"
tarball="${1:-$(ls -t dist/lisa-*-linux-"$(uname -m)".tar.gz 2>/dev/null | head -1)}"
[ -n "$tarball" ] && [ -f "$tarball" ] || fail "no bundle: give a TARBALL or run scripts/release.sh"
tarball="$(realpath "$tarball")"
name="$(basename "$tarball")"
bundle="${name%-linux-*.tar.gz}"      # lisa-<version>
version="${bundle#lisa-}"

step "checksum and signature of $name"
(cd "$(dirname "$tarball")" && sha256sum --check --strict "$name.sha256") || fail "checksum"
pubkey="${LISA_SIGNING_PUBKEY:-}"
if [ -z "$pubkey" ] && [ -n "${LISA_SIGNING_KEY:-}" ]; then pubkey="${LISA_SIGNING_KEY%.sec}.pub"; fi
if [ -f "$tarball.sig" ]; then
    [ -n "$pubkey" ] && [ -f "$pubkey" ] || fail "$name.sig exists but no public key to check it (LISA_SIGNING_PUBKEY)"
    signify-openbsd -V -p "$pubkey" -m "$tarball" -x "$tarball.sig" || fail "signature"
elif [ "${LISA_REQUIRE_SIGNATURE:-0}" = 1 ]; then
    fail "no $name.sig"
else
    echo "(not signed: no $name.sig)"
fi

fake="${LISA_FAKE_UPSTREAM:-$(swift build --show-bin-path 2>/dev/null)/lisa-fake-upstream}"
[ -x "$fake" ] || fail "no lisa-fake-upstream at $fake (swift build --product lisa-fake-upstream, or set LISA_FAKE_UPSTREAM)"
python="$root/.venv/bin/python"
"$python" -c 'import openai' 2>/dev/null || fail "no openai SDK in $root/.venv"

work="$(mktemp -d /tmp/lisa-release-check.XXXXXX)"
rootfs="$work/root"
lisa_pid=""; fake_pid=""
cleanup() {
    set +e
    [ -n "$lisa_pid" ] && kill "$lisa_pid" 2>/dev/null && wait "$lisa_pid" 2>/dev/null
    [ -n "$fake_pid" ] && kill "$fake_pid" 2>/dev/null && wait "$fake_pid" 2>/dev/null
    mountpoint -q "$rootfs/proc" && umount "$rootfs/proc"
    if findmnt -rn -o TARGET | grep -q "^$rootfs"; then
        echo "release-check: $rootfs still has mounts; left in place" >&2
    else
        rm -rf "$work"
    fi
}
trap cleanup EXIT

step "minimal Debian bookworm root filesystem (debootstrap minbase)"
"$root/scripts/debian-rootfs.sh" "$rootfs"
in_root() { chroot "$rootfs" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LD_LIBRARY_PATH= "$@"; }
if in_root sh -c 'command -v swift swiftc'; then fail "the root filesystem has a Swift toolchain"; fi
found="$(find "$rootfs" -xdev \( -name 'libswift*' -o -name 'libFoundation*.so' -o -name 'libdispatch.so' \) -print)"
[ -z "$found" ] || fail "the root filesystem has Swift runtime libraries: $found"
echo "no swift, no libswift*.so, no libFoundation*.so in the root filesystem"

step "the bundle unpacked at /opt/$bundle (/opt/lisa)"
tar -xzf "$tarball" -C "$rootfs/opt"
[ -d "$rootfs/opt/$bundle" ] || fail "the tarball has no top-level $bundle/"
ln -s "$bundle" "$rootfs/opt/lisa"
for f in bin/LISAServe bin/lisactl sbom.cdx.json share/systemd/lisa.service share/systemd/lisa.sysusers.conf \
         share/doc/lisa/README.md share/doc/lisa/Documentation examples/lisa.yaml; do
    [ -e "$rootfs/opt/lisa/$f" ] || fail "the bundle has no $f"
done
for f in LICENSE NOTICE SECURITY.md CHANGELOG.md; do
    [ -e "$rootfs/opt/lisa/share/doc/lisa/$f" ] || echo "WARNING: the bundle has no share/doc/lisa/$f"
done
mount -t proc proc "$rootfs/proc"

step "shared libraries (ldd in the chroot)"
allowed='^(linux-vdso\.so\.1|/lib64/ld-linux-x86-64\.so\.2|/lib/ld-linux-aarch64\.so\.1|(libc|libm|libpthread|libdl|librt|libutil|libstdc\+\+|libgcc_s|libz)\.so\.[0-9]+)$'
for b in LISAServe lisactl; do
    out="$(in_root ldd "/opt/lisa/bin/$b")" || fail "ldd $b: $out"
    echo "$b:"; echo "$out" | sed 's/^/    /'
    ! echo "$out" | grep -q "not found" || fail "$b needs a library the root filesystem lacks"
    while read -r lib _ path _; do
        echo "$lib" | grep -Eq "$allowed" || fail "$b needs $lib ($path): not a C/C++ runtime library"
        case "$path" in ''|\(*) ;; *) [ -e "$rootfs$path" ] || fail "$b: $path missing" ;; esac
    done <<< "$out"
done

step "--version"
commit="$("$python" -c 'import json,sys; m=json.load(open(sys.argv[1]))["metadata"]["component"]; print(next(p["value"] for p in m["properties"] if p["name"]=="lisa:commit"))' "$rootfs/opt/lisa/sbom.cdx.json")"
for b in LISAServe lisactl; do
    v="$(in_root "/opt/lisa/bin/$b" --version)" || fail "$b --version"
    echo "$b --version: $v"
    [[ "$v" == "$version"* ]] || fail "$b --version does not start with $version"
    [[ "$v" == *"$commit"* ]] || fail "$b --version does not name commit $commit"
done

step "the SBOM"
"$python" - "$rootfs/opt/lisa/sbom.cdx.json" <<'EOF' || fail "SBOM"
import json, sys
bom = json.load(open(sys.argv[1]))
assert bom["bomFormat"] == "CycloneDX" and bom["specVersion"] in ("1.5", "1.6"), "not CycloneDX 1.5/1.6"
swift = [c for c in bom["components"] if c.get("purl", "").startswith("pkg:swift/")]
names = {c["name"] for c in swift}
for needed in ("swift-nio", "hummingbird", "async-http-client", "postgres-nio", "swift-crypto"):
    assert needed in names, f"{needed} missing"
for c in swift:
    assert c["version"] and c["licenses"] and any(p["name"] == "swift:package:revision" for p in c["properties"]), c["name"]
assert any(c["name"] == "poppler-utils" and c["scope"] == "optional" for c in bom["components"]), "poppler-utils"
runtime = {c["name"] for c in bom["components"] if c.get("purl", "").startswith("pkg:github/swiftlang/")}
assert {"swift", "swift-corelibs-foundation", "swift-foundation", "swift-foundation-icu"} <= runtime, \
    f"the Swift runtime linked in is not listed: {runtime}"
print(f"{len(swift)} Swift packages, each with version, revision and licence; the toolchain's {', '.join(sorted(runtime))}; "
      f"system: {', '.join(c['name'] for c in bom['components'] if c.get('purl', '').startswith('pkg:deb/'))}")
EOF

step "the systemd unit"
if command -v systemd-analyze >/dev/null; then
    # verify with the bundle's own binary in place of /opt/lisa (this host has no /opt/lisa)
    sed "s|/opt/lisa/|$rootfs/opt/lisa/|g" "$rootfs/opt/lisa/share/systemd/lisa.service" > "$work/lisa.service"
    out="$(systemd-analyze verify "$work/lisa.service" 2>&1)" && [ -z "$out" ] || fail "systemd-analyze verify: $out"
    score="$(systemd-analyze security --offline=yes --threshold=20 "$work/lisa.service" | grep "Overall exposure")" \
        || fail "systemd-analyze security: exposure above 2.0"
    echo "systemd-analyze verify: no warnings; ${score#→ }"
else
    echo "(no systemd-analyze on this host: unit not verified)"
fi

step "the example configurations (LISAServe --check-config in the chroot)"
for f in "$rootfs"/opt/lisa/examples/*.yaml; do
    out="$(in_root /opt/lisa/bin/LISAServe --check-config --config "/opt/lisa/examples/$(basename "$f")" \
        --data-dir /tmp/check-config 2>&1)" || fail "examples/$(basename "$f"): $out"
    echo "examples/$(basename "$f"): $out"
done

step "lisa-fake-upstream on the host"
"$fake" --port 0 --chunk-delay-ms 1 > "$work/fake.log" 2>&1 &
fake_pid=$!
for _ in $(seq 300); do
    fake_port="$(sed -n 's/.*listening on \([0-9]*\).*/\1/p' "$work/fake.log")"
    [ -n "$fake_port" ] && break
    kill -0 "$fake_pid" 2>/dev/null || fail "lisa-fake-upstream exited: $(cat "$work/fake.log")"
    sleep 0.1
done
[ -n "$fake_port" ] || fail "lisa-fake-upstream did not start"
echo "listening on 127.0.0.1:$fake_port (pid $fake_pid)"

step "LISAServe in the chroot, as user lisa, environment empty"
in_root useradd --system --home-dir /var/lib/lisa --shell /usr/sbin/nologin lisa
uid="$(in_root id -u lisa)"; gid="$(in_root id -g lisa)"
install -d -m 0700 -o "$uid" -g "$gid" "$rootfs/var/lib/lisa"
install -d -m 0755 "$rootfs/etc/lisa"
port="$("$python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
cat > "$rootfs/etc/lisa/lisa.yaml" <<EOF
server: {host: 127.0.0.1, port: $port}
dataDir: /var/lib/lisa
models:
  - modelId: chat-small
    modelName: echo
    modelType: textgen
    modelUrl: http://127.0.0.1:$fake_port/v1
EOF
admin_key="release-check-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"
chroot --userspec="$uid:$gid" "$rootfs" /usr/bin/env -i LD_LIBRARY_PATH= LISA_ADMIN_KEY="$admin_key" \
    /opt/lisa/bin/LISAServe --config /etc/lisa/lisa.yaml --data-dir /var/lib/lisa > "$work/lisa.log" 2>&1 &
lisa_pid=$!
"$python" - "$port" "$lisa_pid" <<'EOF' || { cat "$work/lisa.log" >&2; fail "LISAServe did not become healthy"; }
import os, sys, time, urllib.request
port, pid = sys.argv[1], int(sys.argv[2])
deadline = time.monotonic() + 60
while time.monotonic() < deadline:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        sys.exit("LISAServe exited")
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as r:
            if r.status == 200:
                sys.exit(0)
    except OSError:
        time.sleep(0.1)
sys.exit("not healthy within 60 s")
EOF
[ "$(readlink "/proc/$lisa_pid/root")" = "$rootfs" ] || fail "LISAServe (pid $lisa_pid) is not in the chroot"
echo "LISAServe pid $lisa_pid, root $(readlink "/proc/$lisa_pid/root"), uid $(stat -c %u "/proc/$lisa_pid"), on 127.0.0.1:$port"

step "lisactl in the chroot"
lisactl() { chroot --userspec="$uid:$gid" "$rootfs" /usr/bin/env -i LD_LIBRARY_PATH= \
    LISA_URL="http://127.0.0.1:$port" LISA_API_KEY="$admin_key" /opt/lisa/bin/lisactl "$@"; }
out="$(lisactl models list)" || fail "lisactl models list: $out"
echo "$out"; echo "$out" | grep -q chat-small || fail "lisactl models list has no chat-small"
out="$(lisactl chat -m chat-small "hello from the chroot")" || fail "lisactl chat: $out"
echo "lisactl chat: $out"; echo "$out" | grep -q "hello from the chroot" || fail "lisactl chat did not echo"

step "the openai SDK on the host"
"$python" - "$port" "$admin_key" <<'EOF' || fail "openai SDK"
import sys
from openai import OpenAI
client = OpenAI(base_url=f"http://127.0.0.1:{sys.argv[1]}/v1", api_key=sys.argv[2], max_retries=0)
r = client.chat.completions.create(model="chat-small", messages=[{"role": "user", "content": "ping from the SDK"}])
assert r.choices[0].message.content == "echo: ping from the SDK", r
text = "".join(c.choices[0].delta.content or "" for c in client.chat.completions.create(
    model="chat-small", messages=[{"role": "user", "content": "streamed through the chroot"}], stream=True) if c.choices)
assert text == "echo: streamed through the chroot", text
print("buffered:", r.choices[0].message.content, "| streamed:", text)
EOF

step "SIGTERM"
kill -TERM "$lisa_pid"
status=0; wait "$lisa_pid" || status=$?
lisa_pid=""
[ "$status" = 0 ] || { tail -20 "$work/lisa.log" >&2; fail "LISAServe exited $status on SIGTERM"; }
echo "LISAServe exited 0"
[ -s "$rootfs/var/lib/lisa/lisa.sqlite" ] || fail "no /var/lib/lisa/lisa.sqlite"

echo "== release-check: $name OK in $(( $(date +%s) - start )) s"
