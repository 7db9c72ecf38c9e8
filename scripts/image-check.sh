#!/usr/bin/env bash
# Runs the OCI image from scripts/image.sh and chats through it: LISAServe in the image, read-only
# root filesystem, as the image's user (10001), to lisa-fake-upstream on the host; lisactl inside the
# image and the openai SDK outside both get an answer. Exits non-zero on any failure.
#
#   scripts/image-check.sh [OCI_TAR]     (default: the newest dist/lisa-*-oci.tar)
#
# Runtime (LISA_IMAGE_RUNTIME=auto|podman|chroot, default auto): Debian's podman when it can start
# a container here (plain first, then with runc, cgroupfs and explicit ulimits, which sandboxes with
# cgroup v1 and no CAP_SYS_RESOURCE need); otherwise the image's root filesystem unpacked with
# skopeo + umoci and run in a chroot as the image's user, mounted read-only. It prints which ran and why.
# Needs root, lisa-fake-upstream (LISA_BIN_DIR, default the debug build: swift build --product
# lisa-fake-upstream), the openai SDK (LISA_PYTHON, default .venv/bin/python) and:
#   apt-get install -y --no-install-recommends podman runc skopeo umoci
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)

image_tar="${1:-}"
if [ -z "$image_tar" ]; then
    image_tar="$(ls -t dist/lisa-*-oci.tar 2>/dev/null | head -1 || true)"
    [ -n "$image_tar" ] || { echo "image-check: no dist/lisa-*-oci.tar: run scripts/image.sh" >&2; exit 1; }
fi
[ -f "$image_tar" ] || { echo "image-check: $image_tar: no such file" >&2; exit 1; }
image_tar="$(realpath "$image_tar")"
[[ "$(basename "$image_tar")" =~ ^lisa-(.+)-oci\.tar$ ]] || { echo "image-check: $image_tar is not named lisa-<version>-oci.tar" >&2; exit 1; }
version="${BASH_REMATCH[1]}"
[ "$(id -u)" = 0 ] || { echo "image-check: must run as root" >&2; exit 1; }
python="${LISA_PYTHON:-$PWD/.venv/bin/python}"
fake="${LISA_BIN_DIR:-$PWD/.build/debug}/lisa-fake-upstream"
[ -x "$fake" ] || { echo "image-check: $fake is missing: swift build --product lisa-fake-upstream (or set LISA_BIN_DIR)" >&2; exit 1; }
"$python" -c 'import openai' || { echo "image-check: $python has no openai package (set LISA_PYTHON)" >&2; exit 1; }
mode="${LISA_IMAGE_RUNTIME:-auto}"

work="$(mktemp -d /var/tmp/lisa-image-check.XXXXXX)"
fake_pid=""; server_pid=""; container=""; image_id=""; mounts=()
podman=(podman); run_flags=()
cleanup() {
    set +e
    [ -z "$container" ] || "${podman[@]}" rm -f -v "$container" >/dev/null 2>&1
    [ -z "$image_id" ] || "${podman[@]}" rmi -f "$image_id" >/dev/null 2>&1
    [ -z "$server_pid" ] || { kill "$server_pid"; wait "$server_pid"; } 2>/dev/null
    [ -z "$fake_pid" ] || { kill "$fake_pid"; wait "$fake_pid"; } 2>/dev/null
    for ((i = ${#mounts[@]} - 1; i >= 0; i--)); do umount -l "${mounts[$i]}"; done
    [ -n "${LISA_IMAGE_CHECK_KEEP:-}" ] && echo "image-check: kept $work" >&2 || rm -rf "$work"
}
trap cleanup EXIT
fail() {
    if [ -n "$fake_pid" ] && ! kill -0 "$fake_pid" 2>/dev/null; then echo "image-check: lisa-fake-upstream exited:" >&2; tail -20 "$work/fake.log" >&2; fi
    echo "image-check: FAILED: $*" >&2; exit 1
}

free_port() { "$python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
# Waits until URL answers 200 (up to 60 s), or PID (when given) has exited.
wait_ready() { # URL [PID]
    "$python" - "$1" "${2:-}" <<'PY' || fail "$1 never answered 200"
import os, sys, time, urllib.request
url, pid = sys.argv[1], sys.argv[2]
deadline = time.monotonic() + 60
while time.monotonic() < deadline:
    if pid and not os.path.exists(f"/proc/{pid}"):
        sys.exit(f"process {pid} exited")
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            if r.status == 200:
                sys.exit(0)
    except Exception:
        pass
    time.sleep(0.2)
sys.exit("timed out")
PY
}

# The image's configuration, as scripts/image.sh and deploy/Dockerfile promise it.
skopeo inspect --config "oci-archive:$image_tar" > "$work/config.json" || fail "skopeo inspect $image_tar"
"$python" - "$work/config.json" "$version" <<'PY' || fail "the image's configuration"
import json, sys
image, version = json.load(open(sys.argv[1])), sys.argv[2]
c = image["config"]
env = dict(e.split("=", 1) for e in c.get("Env", []))
labels = c.get("Labels", {})
problems = [what for what, ok in [
    ("user 10001:10001", c.get("User") == "10001:10001"),
    ("entrypoint /opt/lisa/bin/LISAServe", c.get("Entrypoint") == ["/opt/lisa/bin/LISAServe"]),
    ("port 8080/tcp exposed", "8080/tcp" in c.get("ExposedPorts", {})),
    ("volumes /var/lib/lisa and /tmp", {"/var/lib/lisa", "/tmp"} <= set(c.get("Volumes", {}))),
    ("LISA_HOST=0.0.0.0", env.get("LISA_HOST") == "0.0.0.0"),
    ("LISA_DATA_DIR=/var/lib/lisa", env.get("LISA_DATA_DIR") == "/var/lib/lisa"),
    (f"label version {version}", labels.get("org.opencontainers.image.version") == version),
    ("label revision (a commit)", len(labels.get("org.opencontainers.image.revision", "")) == 40),
    ("label licenses Apache-2.0", labels.get("org.opencontainers.image.licenses") == "Apache-2.0"),
] if not ok]
if problems:
    sys.exit("the image's configuration lacks: " + ", ".join(problems) + "\n" + json.dumps(c, indent=1))
print("ok  configuration: user 10001, entrypoint, port 8080, volumes, environment, OCI labels (revision " + labels["org.opencontainers.image.revision"][:12] + ")")
PY

# The upstream, on the host.
# A copy: a build running beside this check may replace the debug binary while it runs.
cp "$fake" "$work/lisa-fake-upstream"
up_port="$(free_port)"
"$work/lisa-fake-upstream" --port "$up_port" --chunk-delay-ms 5 >"$work/fake.log" 2>&1 &
fake_pid=$!
wait_ready "http://127.0.0.1:$up_port/health" "$fake_pid"
port="$(free_port)"
key="image-check-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
cat > "$work/lisa.yaml" <<YAML
models:
  - modelId: chat-small
    modelName: Qwen/Qwen2.5-0.5B-Instruct
    modelType: textgen
    inferenceContainer: vllm
    modelUrl: http://127.0.0.1:$up_port/v1
YAML
chmod 0644 "$work/lisa.yaml"
# The image's HEALTHCHECK in deploy/Dockerfile, run in the image (bash's /dev/tcp, no curl).
probe='exec 3<>/dev/tcp/127.0.0.1/${LISA_PORT:-8080} && printf '"'"'GET /health/readiness HTTP/1.0\r\nHost: localhost\r\n\r\n'"'"' >&3 && read -r _ code _ <&3 && test "$code" = 200'

# in_image CMD...: runs CMD in the image, as its user, beside the server (podman exec or chroot).
runtime=""
if [ "$mode" != chroot ]; then
    command -v podman >/dev/null || { [ "$mode" = auto ] || fail "podman is missing"; }
fi
if [ "$mode" != chroot ] && command -v podman >/dev/null; then
    loaded="$(podman load -q -i "$image_tar" 2>&1)" || fail "podman load: $loaded"
    image_id="$(printf '%s\n' "$loaded" | sed -n 's/^Loaded image[^:]*: *//p' | tail -1)"
    [ -n "$image_id" ] || fail "podman load said: $loaded"
    if out="$(podman run --rm "$image_id" --version 2>&1)"; then
        runtime="podman"
    else
        why="$out"
        podman=(podman --runtime runc --cgroup-manager cgroupfs)
        # Without CAP_SYS_RESOURCE podman's default limits (nofile 1048576, nproc above what the
        # runtime may set) cannot be applied: ask for the host's open files and 16384 processes.
        run_flags=(--ulimit "nofile=$(ulimit -Hn):$(ulimit -Hn)" --ulimit "nproc=16384:16384")
        if command -v runc >/dev/null && out="$("${podman[@]}" run --rm "${run_flags[@]}" "$image_id" --version 2>&1)"; then
            runtime="podman (runc, cgroupfs, ulimits: plain podman failed: $why)"
        else
            [ "$mode" = auto ] || fail "podman cannot start a container here: $why / with runc: $out"
            echo "image-check: podman cannot start a container here: $why${out:+ / with runc, cgroupfs, ulimits: $out}" >&2
            podman rmi -f "$image_id" >/dev/null 2>&1 || true
            image_id=""; podman=(podman)
        fi
    fi
    [ -z "$runtime" ] || { echo "== version in the image: $out"; printf '%s\n' "$out" | grep -q -- "$version" || fail "--version does not name $version"; }
fi

if [ -n "$runtime" ]; then
    container="lisa-image-check-$$"
    # --read-only: the image's volumes (/var/lib/lisa, /tmp) are the only writable places.
    "${podman[@]}" run -d --name "$container" --read-only --read-only-tmpfs=false --network host "${run_flags[@]}" \
        -v "$work/lisa.yaml:/etc/lisa/lisa.yaml:ro" -e LISA_CONFIG=/etc/lisa/lisa.yaml \
        -e LISA_PORT="$port" -e LISA_ADMIN_KEY="$key" \
        --health-cmd "$("$python" -c 'import json, sys; print(json.dumps(["bash", "-c", sys.argv[1]]))' "$probe")" --health-interval disable "$image_id" >/dev/null \
        || fail "podman run"
    in_image() { "${podman[@]}" exec -e LISA_URL="http://127.0.0.1:$port" -e LISA_API_KEY="$key" "$container" "$@"; }
    server_log() { "${podman[@]}" logs "$container" 2>&1 | tail -40; }
    health() { "${podman[@]}" healthcheck run "$container"; }
else
    [ "$mode" != podman ] || fail "podman was asked for"
    runtime="chroot (unpacked with skopeo + umoci; read-only bind mount)"
    for tool in skopeo umoci; do command -v "$tool" >/dev/null || fail "$tool is missing: apt-get install -y --no-install-recommends skopeo umoci"; done
    skopeo copy --quiet "oci-archive:$image_tar" "oci:$work/oci:image"
    umoci unpack --image "$work/oci:image" "$work/unpacked" >/dev/null
    root="$work/unpacked/rootfs"
    # The image's own configuration: user, environment, entrypoint, working directory.
    eval "$("$python" - "$work/unpacked/config.json" <<'PY'
import json, shlex, sys
p = json.load(open(sys.argv[1]))["process"]
print("image_user=" + shlex.quote(f'{p["user"]["uid"]}:{p["user"]["gid"]}'))
print("image_env=(" + " ".join(shlex.quote(e) for e in p["env"]) + ")")
print("image_args=(" + " ".join(shlex.quote(a) for a in p["args"]) + ")")
print("image_cwd=" + shlex.quote(p.get("cwd", "/")))
PY
)"
    mkdir -p "$root/etc/lisa" "$work/data"
    touch "$root/etc/lisa/lisa.yaml"
    chown "$image_user" "$work/data"
    bind() { mount "$@"; mounts+=("${@: -1}"); }
    bind --bind "$root" "$root"
    mount -o remount,bind,ro "$root" "$root"
    bind -t proc proc "$root/proc"
    bind --bind /dev "$root/dev"
    bind -t tmpfs -o mode=1777 tmpfs "$root/tmp"
    bind --bind "$work/data" "$root/var/lib/lisa"
    bind --bind "$work/lisa.yaml" "$root/etc/lisa/lisa.yaml"
    mount -o remount,bind,ro "$root/etc/lisa/lisa.yaml"
    chroot --userspec="$image_user" "$root" env -i -C "$image_cwd" "${image_env[@]}" LISA_CONFIG=/etc/lisa/lisa.yaml \
        LISA_PORT="$port" LISA_ADMIN_KEY="$key" "${image_args[@]}" >"$work/server.log" 2>&1 &
    server_pid=$!
    echo "== version in the image: $(chroot --userspec="$image_user" "$root" env -i "${image_env[@]}" "${image_args[@]}" --version)"
    in_image() { chroot --userspec="$image_user" "$root" env -i -C "$image_cwd" "${image_env[@]}" \
        LISA_PORT="$port" LISA_URL="http://127.0.0.1:$port" LISA_API_KEY="$key" "$@"; }
    server_log() { tail -40 "$work/server.log"; }
    health() { in_image bash -c "$probe"; }
fi
echo "== runtime: $runtime"

wait_ready "http://127.0.0.1:$port/health/readiness" "$server_pid" || { server_log; exit 1; }
check() { # WHAT SHELL-CODE (run here: in_image and health are functions of this script)
    local out
    if out="$(eval "$2" 2>&1)"; then echo "ok  $1"; else server_log >&2; fail "$1: $out"; fi
}
check "runs as uid 10001" 'in_image id -u | grep -qx 10001'
check "root filesystem is read-only" '! in_image touch /opt/lisa/x'
check "state written to /var/lib/lisa" 'in_image test -s /var/lib/lisa/lisa.sqlite'
check "binaries need nothing the image lacks" 'in_image ldd /opt/lisa/bin/LISAServe /opt/lisa/bin/lisactl | { ! grep "not found"; }'
check "pdftotext present" 'in_image pdftotext -v'
check "CA certificates present" 'in_image test -s /etc/ssl/certs/ca-certificates.crt'
check "health probe (GET /health/readiness) passes" 'health'
out="$(in_image lisactl chat -m chat-small --no-stream "Say hello from the image")" || { server_log >&2; fail "lisactl chat: $out"; }
[ -n "$out" ] || fail "lisactl chat answered nothing"
echo "ok  lisactl chat in the image: ${out:0:60}"
out="$(in_image lisactl models list)" || fail "lisactl models list: $out"
printf '%s\n' "$out" | grep -q chat-small || fail "lisactl models list does not show chat-small: $out"
echo "ok  lisactl models list shows chat-small"
"$python" - "http://127.0.0.1:$port/v1" "$key" <<'PY' || { server_log >&2; fail "openai SDK chat"; }
import sys
from openai import OpenAI
client = OpenAI(base_url=sys.argv[1], api_key=sys.argv[2], max_retries=0)
answer = client.chat.completions.create(model="chat-small", messages=[{"role": "user", "content": "Hello"}])
assert answer.choices[0].message.content, answer
stream = client.chat.completions.create(model="chat-small", messages=[{"role": "user", "content": "Hello"}], stream=True)
text = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
assert text, "empty stream"
print(f"ok  openai SDK chat through the image (plain and streamed): {answer.choices[0].message.content[:40]!r}")
PY
echo "== image-check passed: $(basename "$image_tar") with $runtime, $(( $(date +%s) - start )) s"
