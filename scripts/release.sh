#!/usr/bin/env bash
# Builds the release bundle of the committed tree (HEAD):
#   dist/lisa-<version>-linux-<arch>.tar.gz, its .sha256 and, with LISA_SIGNING_KEY, its .sig.
#
#   scripts/release.sh [--allow-dirty] [VERSION]
#
# VERSION defaults to LISAVersion.number of the commit (Sources/LISAAPI/Version.swift).
# The build runs in a copy of `git archive HEAD` under .build-release/ (its own scratch path),
# so uncommitted changes are never in a bundle; a tree with uncommitted changes to tracked
# files is refused unless --allow-dirty is given.
# Environment:
#   LISA_SIGNING_KEY   signify-openbsd secret key: writes a detached Ed25519 signature (.sig);
#                      with <key>.pub beside <key>.sec the signature is verified at once.
#   SOURCE_DATE_EPOCH  the build date (default: the commit's date, so a commit builds the same).
#   LISA_RELEASE_KEEP_SYMBOLS=1  keep the symbol tables (default: stripped).
set -euo pipefail

allow_dirty=0
version=""
for arg in "$@"; do
    case "$arg" in
        --allow-dirty) allow_dirty=1 ;;
        -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
        -*) echo "release.sh: unknown option $arg" >&2; exit 64 ;;
        *) [ -z "$version" ] || { echo "release.sh: one VERSION only" >&2; exit 64; }; version="$arg" ;;
    esac
done

root="$(git -C "$(dirname "$0")/.." rev-parse --show-toplevel)"
cd "$root"
start=$(date +%s)

if [ -n "$(git status --porcelain --untracked-files=no)" ]; then
    if [ "$allow_dirty" = 1 ]; then
        echo "release.sh: WARNING: the working tree has uncommitted changes; the bundle is built from HEAD without them" >&2
    else
        echo "release.sh: the working tree has uncommitted changes (git status); commit them, or pass --allow-dirty to build HEAD without them" >&2
        exit 1
    fi
fi

commit="$(git rev-parse HEAD)"
commit_epoch="$(git log -1 --format=%ct HEAD)"
if [ -z "$version" ]; then
    version="$(git show HEAD:Sources/LISAAPI/Version.swift | sed -n 's/.*static let \(number\|string\) *= *"\([^"]*\)".*/\2/p' | head -1)"
fi
if ! [[ "$version" =~ ^[0-9]+\.[0-9]+\.[0-9]+(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$ ]]; then
    echo "release.sh: '$version' is not a semantic version (MAJOR.MINOR.PATCH[-pre][+build])" >&2
    exit 64
fi
build_epoch="${SOURCE_DATE_EPOCH:-$commit_epoch}"
build_date="$(date -u -d "@$build_epoch" +%Y-%m-%dT%H:%M:%SZ)"
arch="$(uname -m)"
name="lisa-$version"
tarball="dist/$name-linux-$arch.tar.gz"
echo "== LISA $version, commit $commit, built $build_date, linux-$arch"

# 1. The committed tree, with the build information written in, synced into a stable copy:
#    rsync -c leaves unchanged files (and their mtimes) alone, so the build is incremental.
work="$root/.build-release"
mkdir -p "$work" dist
rm -rf "$work/tree"
mkdir "$work/tree"
git archive HEAD | tar -x -C "$work/tree"
if [ ! -f "$work/tree/Package.resolved" ]; then
    if [ "$allow_dirty" = 1 ] && [ -f Package.resolved ]; then
        echo "release.sh: WARNING: Package.resolved is not committed; using the working tree's" >&2
        cp Package.resolved "$work/tree/"
    else
        echo "release.sh: Package.resolved is not committed: the release needs the pinned versions" >&2
        exit 1
    fi
fi
info="$work/tree/Sources/LISAAPI/BuildInfo.swift"
if [ -f "$info" ]; then
    sed -i -E \
        -e "s/(static let version: String\?) = nil/\1 = \"$version\"/" \
        -e "s/(static let commit: String\?) = nil/\1 = \"$commit\"/" \
        -e "s/(static let date: String\?) = nil/\1 = \"$build_date\"/" "$info"
    if [ "$(grep -c -E 'static let (version|commit|date): String\? = "' "$info")" != 3 ]; then
        echo "release.sh: could not write version, commit and date into Sources/LISAAPI/BuildInfo.swift" >&2
        exit 1
    fi
elif [ "$allow_dirty" = 1 ]; then
    echo "release.sh: WARNING: the commit has no Sources/LISAAPI/BuildInfo.swift; --version will not name the commit" >&2
else
    echo "release.sh: the commit has no Sources/LISAAPI/BuildInfo.swift" >&2
    exit 1
fi
mkdir -p "$work/src"
rsync -rc --delete "$work/tree/" "$work/src/"

# 2. Release build with the Swift runtime linked in, only the pinned versions, no Vapor example.
build() {
    (cd "$work/src" && env -u LISA_VAPOR_EXAMPLE nice -n 10 swift build -c release --static-swift-stdlib \
        --force-resolved-versions --scratch-path "$work/scratch" "$@")
}
build_start=$(date +%s)
build --product LISAServe
build --product lisactl
bin="$(build --show-bin-path)"
echo "== build: $(( $(date +%s) - build_start )) s"

# 3. The bundle.
stage="$work/stage"
rm -rf "$stage"
b="$stage/$name"
mkdir -p "$b/bin" "$b/share/doc/lisa" "$b/share/systemd" "$b/share/helm" "$b/examples"
install -m 0755 "$bin/LISAServe" "$bin/lisactl" "$b/bin/"
if [ "${LISA_RELEASE_KEEP_SYMBOLS:-0}" != 1 ]; then
    strip --strip-all "$b/bin/LISAServe" "$b/bin/lisactl"
fi
for f in README.md LICENSE NOTICE SECURITY.md CHANGELOG.md; do
    if [ -f "$work/src/$f" ]; then
        install -m 0644 "$work/src/$f" "$b/share/doc/lisa/"
    elif [ "$allow_dirty" = 1 ]; then
        echo "release.sh: WARNING: the commit has no $f" >&2
    else
        echo "release.sh: the commit has no $f" >&2
        exit 1
    fi
done
cp -R "$work/src/Documentation" "$b/share/doc/lisa/Documentation"
cp -R "$work/src/deploy/examples/." "$b/examples/"
cp -R "$work/src/deploy/systemd/." "$b/share/systemd/"
cp -R "$work/src/deploy/helm/lisa" "$b/share/helm/lisa"
cp -R "$work/src/deploy/kubernetes" "$b/share/kubernetes"

# The SBOM: the Swift packages compiled into the two binaries, at the pinned versions.
(cd "$work/src" && env -u LISA_VAPOR_EXAMPLE swift package --scratch-path "$work/scratch" \
    show-dependencies --format json) > "$work/dependencies.json"
# Its schema check needs cyclonedx-python-lib, in a venv of the release's own (made once).
if ! "$work/venv/bin/python" -c 'import cyclonedx.validation.json' 2>/dev/null; then
    python3 -m venv "$work/venv"
    "$work/venv/bin/pip" install -q --disable-pip-version-check 'cyclonedx-python-lib[json-validation]==11.12.0'
fi
"$work/venv/bin/python" "$work/src/scripts/sbom.py" --require-validation --version "$version" --commit "$commit" --date "$build_date" \
    --source "$work/src" --scratch "$work/scratch" --show-dependencies "$work/dependencies.json" \
    --binary "$b/bin/LISAServe" --binary "$b/bin/lisactl" --output "$b/sbom.cdx.json"

# Reproducible archive: sorted names, root-owned, every mtime the commit's, no atime/ctime.
chmod -R u+rwX,go+rX,go-w "$b"
rm -f "$tarball" "$tarball.sha256" "$tarball.sig"
tar --sort=name --owner=0 --group=0 --numeric-owner --mtime="@$commit_epoch" \
    --format=posix --pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime \
    -C "$stage" -cf - "$name" | gzip -n -9 > "$tarball"
(cd dist && sha256sum "$(basename "$tarball")" > "$(basename "$tarball").sha256")

if [ -n "${LISA_SIGNING_KEY:-}" ]; then
    signify-openbsd -S -s "$LISA_SIGNING_KEY" -m "$tarball" -x "$tarball.sig"
    pub="${LISA_SIGNING_KEY%.sec}.pub"
    if [ "$pub" != "$LISA_SIGNING_KEY" ] && [ -f "$pub" ]; then
        signify-openbsd -V -p "$pub" -m "$tarball" -x "$tarball.sig"
    fi
fi

echo "== $tarball: $(du -h "$tarball" | cut -f1) ($(stat -c %s "$tarball") bytes); bin/LISAServe $(du -h "$b/bin/LISAServe" | cut -f1), bin/lisactl $(du -h "$b/bin/lisactl" | cut -f1)"
cat "$tarball.sha256"
[ -f "$tarball.sig" ] && echo "signature: $tarball.sig"
echo "== release.sh: $(( $(date +%s) - start )) s"
