#!/usr/bin/env bash
# Builds dist/lisa-<version>-oci.tar, an OCI image archive, from a release bundle with Debian's
# tools and no container daemon: debootstrap (scripts/debian-rootfs.sh), umoci and skopeo.
#
#   scripts/image.sh [BUNDLE_TARBALL]      (default: the newest dist/lisa-*-linux-*.tar.gz)
#
# Two layers: a Debian bookworm minbase root filesystem with ca-certificates, poppler-utils and
# tzdata (apt lists, docs and man pages removed; the packages' copyright files kept), then the bundle
# under /opt/lisa. The configuration matches deploy/Dockerfile: user 10001, LISAServe as entrypoint,
# LISA_HOST=0.0.0.0, state in the volume /var/lib/lisa, /tmp a volume, so a read-only root works.
# The OCI image format has no HEALTHCHECK: probe GET /health/readiness from the runtime (podman
# --health-cmd, Kubernetes probes); see Documentation/Deployment.md.
# Needs root and: apt-get install -y --no-install-recommends debootstrap umoci skopeo
# Only the first run needs Debian's mirror (the root filesystem is cached; LISA_ROOTFS_CACHE).
# LISA_SIGNING_KEY (a signify-openbsd secret key, as for release.sh) also writes <archive>.sig.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)

bundle="${1:-}"
if [ -z "$bundle" ]; then
    bundle="$(ls -t dist/lisa-*-linux-*.tar.gz 2>/dev/null | head -1 || true)"
    [ -n "$bundle" ] || { echo "image.sh: no dist/lisa-*-linux-*.tar.gz: run scripts/release.sh or name a bundle" >&2; exit 1; }
fi
[ -f "$bundle" ] || { echo "image.sh: $bundle: no such file" >&2; exit 1; }
[ "$(id -u)" = 0 ] || { echo "image.sh: must run as root (debootstrap, chroot, file ownership)" >&2; exit 1; }
for tool in umoci skopeo debootstrap; do
    command -v "$tool" >/dev/null || { echo "image.sh: $tool is missing: apt-get install -y --no-install-recommends debootstrap umoci skopeo" >&2; exit 1; }
done
if [ -f "$bundle.sha256" ]; then
    (cd "$(dirname "$bundle")" && sha256sum --quiet -c "$(basename "$bundle").sha256") \
        || { echo "image.sh: $bundle does not match its .sha256" >&2; exit 1; }
fi

base="$(basename "$bundle")"
[[ "$base" =~ ^lisa-(.+)-linux-([a-z0-9_]+)\.tar\.gz$ ]] \
    || { echo "image.sh: $base is not named lisa-<version>-linux-<arch>.tar.gz" >&2; exit 1; }
version="${BASH_REMATCH[1]}"; machine="${BASH_REMATCH[2]}"
case "$machine" in
    x86_64|amd64) arch=amd64 ;;
    aarch64|arm64) arch=arm64 ;;
    *) echo "image.sh: unknown architecture $machine" >&2; exit 1 ;;
esac
[ "$arch" = "$(dpkg --print-architecture)" ] \
    || { echo "image.sh: a $arch bundle needs a $arch Debian root filesystem; this machine is $(dpkg --print-architecture)" >&2; exit 1; }

output="dist/lisa-$version-oci.tar"
work="$(mktemp -d /var/tmp/lisa-image.XXXXXX)"
trap 'rm -rf "$work"' EXIT

# 1. The bundle, and what it says about itself.
mkdir -p "$work/bundle"
tar -xzf "$bundle" -C "$work/bundle"
top="$work/bundle/lisa-$version"
[ -x "$top/bin/LISAServe" ] && [ -x "$top/bin/lisactl" ] \
    || { echo "image.sh: $bundle has no lisa-$version/bin/LISAServe and bin/lisactl" >&2; exit 1; }
# Every file of the bundle carries the commit's time: the image's creation time and its layers' clamp.
epoch="$(stat -c %Y "$top")"
created="$(date -u -d "@$epoch" +%Y-%m-%dT%H:%M:%SZ)"
revision="$( { "$top/bin/LISAServe" --version 2>/dev/null || true; cat "$top/sbom.cdx.json" 2>/dev/null || true; } \
    | grep -oE '\b[0-9a-f]{40}\b' | head -1 || true)"
[ -n "$revision" ] || revision=unknown
echo "== image of LISA $version ($revision, $created), linux/$arch"

# Layers: sorted names, numeric owners, no mtime after the release's, no atime/ctime.
layer_tar() { # DIR OUT
    tar --sort=name --numeric-owner --xattrs --mtime="@$epoch" --clamp-mtime --format=posix \
        --pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime -C "$1" -cf "$2" .
}

# 2. The base layer: Debian minbase with the packages LISA uses, the user, nothing else.
scripts/debian-rootfs.sh "$work/base" --include ca-certificates,poppler-utils,tzdata
root="$work/base"
chroot "$root" useradd --uid 10001 --user-group --no-create-home --home-dir /var/lib/lisa \
    --shell /usr/sbin/nologin --comment "LISA" lisa
# Later dpkg runs in the image leave the same out (as Debian's own slim images do).
cat > "$root/etc/dpkg/dpkg.cfg.d/lisa-slim" <<'SLIM'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-exclude /usr/share/lintian/*
SLIM
find "$root/usr/share/doc" -mindepth 1 ! -type d ! -name copyright -delete
find "$root/usr/share/doc" -mindepth 1 -type d -empty -delete
rm -rf "$root/usr/share/man/"* "$root/usr/share/info/"* "$root/usr/share/locale/"* "$root/usr/share/lintian" \
    "$root/var/lib/apt/lists/"* "$root/var/cache/apt/"* "$root/var/cache/debconf/"*-old "$root/var/lib/dpkg/"*-old \
    "$root/var/log/"*.log "$root/etc/machine-id" "$root/etc/lisa-rootfs"
: > "$root/etc/machine-id"
# The build host's resolver and name stay out: container runtimes mount their own.
: > "$root/etc/resolv.conf"
echo localhost > "$root/etc/hostname"
layer_tar "$root" "$work/base.tar"

# 3. The application layer: the bundle under /opt/lisa, the state directory owned by the user.
app="$work/app"
mkdir -p "$app/opt" "$app/usr/local/bin" "$app/var/lib/lisa"
cp -a "$top" "$app/opt/lisa"
chown -R 0:0 "$app/opt"
ln -s /opt/lisa/bin/LISAServe "$app/usr/local/bin/LISAServe"
ln -s /opt/lisa/bin/lisactl "$app/usr/local/bin/lisactl"
chown 10001:10001 "$app/var/lib/lisa"
chmod 0700 "$app/var/lib/lisa"
layer_tar "$app" "$work/app.tar"

# 4. The OCI image: two layers and the configuration, then one oci-archive.
oci="$work/oci"
history=(--history.created "$created" --history.author "LISA scripts/image.sh")
umoci init --layout "$oci"
umoci new --image "$oci:lisa"
umoci raw add-layer --image "$oci:lisa" "${history[@]}" \
    --history.created_by "scripts/debian-rootfs.sh --include ca-certificates,poppler-utils,tzdata (Debian bookworm minbase), user lisa 10001" \
    "$work/base.tar"
umoci raw add-layer --image "$oci:lisa" "${history[@]}" \
    --history.created_by "$base under /opt/lisa" "$work/app.tar"
labels=(
    "org.opencontainers.image.title=LISA"
    "org.opencontainers.image.description=LISA, an OpenAI-compatible LLM inference gateway (LISAServe, lisactl)"
    "org.opencontainers.image.version=$version"
    "org.opencontainers.image.revision=$revision"
    "org.opencontainers.image.created=$created"
    "org.opencontainers.image.licenses=Apache-2.0"
    "org.opencontainers.image.base.name=debian:bookworm (debootstrap minbase)"
)
config=(--image "$oci:lisa" --tag "$version" --no-history
    --architecture "$arch" --os linux --created "$created" --author "LISA"
    --config.user 10001:10001 --config.workingdir /var/lib/lisa
    --config.entrypoint /opt/lisa/bin/LISAServe --config.stopsignal SIGTERM
    --config.exposedports 8080/tcp --config.volume /var/lib/lisa --config.volume /tmp
    --config.env PATH=/opt/lisa/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
    --config.env LANG=C.UTF-8 --config.env HOME=/var/lib/lisa --config.env TMPDIR=/tmp
    --config.env LISA_HOST=0.0.0.0 --config.env LISA_PORT=8080 --config.env LISA_DATA_DIR=/var/lib/lisa)
for label in "${labels[@]}"; do config+=(--config.label "$label" --manifest.annotation "$label"); done
umoci config "${config[@]}"
umoci rm --image "$oci:lisa"
umoci gc --layout "$oci"

mkdir -p dist
rm -f "$output" "$output.sha256"
# skopeo copies into a fresh layout holding only lisa/lisaserve:<version> (and checks every digest); the archive
# is that layout in a tar of our own, so the same bundle and cached root filesystem give the same bytes.
skopeo copy --quiet "oci:$oci:$version" "oci:$work/archive:lisa/lisaserve:$version"
tar --sort=name --owner=0 --group=0 --numeric-owner --mtime="@$epoch" --format=posix \
    --pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime -C "$work/archive" -cf "$output" .
(cd dist && sha256sum "$(basename "$output")" > "$(basename "$output").sha256")
rm -f "$output.sig"
if [ -n "${LISA_SIGNING_KEY:-}" ]; then
    signify-openbsd -S -s "$LISA_SIGNING_KEY" -m "$output" -x "$output.sig"
    pub="${LISA_SIGNING_KEY%.sec}.pub"
    if [ -f "$pub" ]; then
        signify-openbsd -V -q -p "$pub" -m "$output" -x "$output.sig"
    fi
fi
echo "== $output: $(du -h "$output" | cut -f1) (base layer $(du -h "$work/base.tar" | cut -f1), application $(du -h "$work/app.tar" | cut -f1) uncompressed), $(( $(date +%s) - start )) s"
