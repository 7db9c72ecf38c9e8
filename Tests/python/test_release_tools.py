"""The release tools that need no build: scripts/release.sh's refusals, scripts/sbom.py's
component list, and the systemd unit's hardening. (The bundle itself is checked by
scripts/release-check.sh, which runs it in a Debian chroot.)"""
import json
import pathlib
import shutil
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
# release.sh's venv has cyclonedx-python-lib: there sbom.py also checks the CycloneDX schema.
_RELEASE_PYTHON = ROOT / ".build-release" / "venv" / "bin" / "python"
SBOM_PYTHON = str(_RELEASE_PYTHON) if _RELEASE_PYTHON.exists() else sys.executable


@pytest.fixture
def clone(tmp_path):
    """A clone of the committed tree, with this checkout's release scripts."""
    repo = tmp_path / "repo"
    subprocess.run(["git", "clone", "-q", "--no-checkout", str(ROOT), str(repo)], check=True)
    subprocess.run(["git", "-C", str(repo), "checkout", "-q", "HEAD"], check=True)
    for script in ("release.sh", "sbom.py"):
        shutil.copy(ROOT / "scripts" / script, repo / "scripts" / script)
    subprocess.run(["git", "-C", str(repo), "add", "scripts"], check=True)
    subprocess.run(["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.com",
                    "commit", "-q", "--allow-empty", "-m", "scripts"], check=True)
    return repo


def test_release_refuses_uncommitted_changes_and_bad_versions(clone):
    readme = clone / "README.md"
    readme.write_text(readme.read_text() + "\nnot committed\n")
    r = subprocess.run(["scripts/release.sh", "0.6.0"], cwd=clone, capture_output=True, text=True)
    assert r.returncode == 1, r
    assert "uncommitted changes" in r.stderr and "--allow-dirty" in r.stderr
    assert not (clone / ".build-release").exists(), "nothing is built from a dirty tree"

    subprocess.run(["git", "-C", str(clone), "checkout", "-q", "--", "README.md"], check=True)
    for bad in ("v0.6.0", "0.6", "0.6.0 rc1", "0.6.0-"):
        r = subprocess.run(["scripts/release.sh", bad], cwd=clone, capture_output=True, text=True)
        assert r.returncode == 64, (bad, r)
        assert "is not a semantic version" in r.stderr


def test_sbom_lists_the_compiled_packages_with_pinned_versions_and_licences(tmp_path):
    checkouts = ROOT / ".build" / "checkouts"
    if not (checkouts / "swift-nio").is_dir() or not (ROOT / "Package.resolved").exists():
        pytest.skip("needs the debug build's checkouts and Package.resolved")
    source = tmp_path / "src"
    source.mkdir()
    shutil.copy(ROOT / "Package.resolved", source / "Package.resolved")
    scratch = tmp_path / "scratch"
    (scratch / "release" / "NIOCore.build").mkdir(parents=True)
    (scratch / "release" / "CNIOLinux.build").mkdir()
    (scratch / "checkouts").symlink_to(checkouts)
    # swift-nio's modules were compiled (a Swift module's sources list, a C module's .d file);
    # swift-log is in the graph but nothing of it was compiled.
    (scratch / "release" / "NIOCore.build" / "sources").write_text(
        f"{scratch}/checkouts/swift-nio/Sources/NIOCore/Channel.swift\n")
    (scratch / "release" / "CNIOLinux.build" / "shim.c.d").write_text(
        f"dependencies: {scratch}/checkouts/swift-nio/Sources/CNIOLinux/shim.c /usr/include/poll.h\n")
    graph = {"identity": "lisa-swift", "name": "lisa-swift", "url": str(ROOT), "version": "unspecified",
             "path": str(ROOT), "dependencies": [
                 {"identity": "swift-nio", "name": "swift-nio", "url": "https://github.com/apple/swift-nio.git",
                  "version": "0.0.0", "path": f"{scratch}/checkouts/swift-nio", "dependencies": [
                      {"identity": "swift-atomics", "name": "swift-atomics", "url": "https://github.com/apple/swift-atomics.git",
                       "version": "0.0.0", "path": f"{scratch}/checkouts/swift-atomics", "dependencies": []}]},
                 {"identity": "swift-log", "name": "swift-log", "url": "https://github.com/apple/swift-log.git",
                  "version": "0.0.0", "path": f"{scratch}/checkouts/swift-log", "dependencies": []}]}
    (tmp_path / "deps.json").write_text(json.dumps(graph))
    out = tmp_path / "sbom.cdx.json"
    r = subprocess.run([SBOM_PYTHON, str(ROOT / "scripts" / "sbom.py"), "--version", "0.6.0", "--commit", "c0ffee",
                        "--date", "2026-12-07T00:00:00Z", "--source", str(source), "--scratch", str(scratch),
                        "--show-dependencies", str(tmp_path / "deps.json"), "--binary", "/bin/true",
                        "--toolchain-version", "6.3.1",
                        "--output", str(out)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    if SBOM_PYTHON != sys.executable:
        assert "valid CycloneDX 1.5 (JSON schema, strict)" in r.stdout, r.stdout
    bom = json.loads(out.read_text())
    pins = {p["identity"]: p for p in json.loads((ROOT / "Package.resolved").read_text())["pins"]}
    nio = pins["swift-nio"]["state"]

    assert bom["bomFormat"] == "CycloneDX" and bom["specVersion"] == "1.5"
    meta = bom["metadata"]["component"]
    assert (meta["name"], meta["version"]) == ("lisa", "0.6.0")
    assert {"name": "lisa:commit", "value": "c0ffee"} in meta["properties"]
    swift = [c for c in bom["components"] if c.get("purl", "").startswith("pkg:swift/")]
    assert [c["name"] for c in swift] == ["swift-nio"], "only what was compiled, not all of the graph"
    [component] = swift
    assert component["version"] == nio["version"], "the pinned version, not the graph's"
    assert component["purl"] == f"pkg:swift/github.com/apple/swift-nio@{nio['version']}"
    assert {"name": "swift:package:revision", "value": nio["revision"]} in component["properties"]
    assert component["licenses"] == [{"license": {"id": "Apache-2.0"}}]
    names = {c["name"]: c for c in bom["components"]}
    assert names["libc6"]["scope"] == "required", "/bin/true needs libc.so.6 from the system"
    assert names["poppler-utils"]["scope"] == "optional"
    runtime = [c for c in bom["components"] if c.get("purl", "").startswith("pkg:github/swiftlang/")]
    assert [c["name"] for c in runtime] == ["swift", "swift-corelibs-libdispatch", "swift-corelibs-foundation",
                                            "swift-foundation", "swift-foundation-icu"]
    assert all(c["version"] == "swift-6.3.1-RELEASE" for c in runtime)
    assert names["swift-foundation-icu"]["licenses"] == [{"license": {"id": "Unicode-3.0"}}]
    assert {"ref": "pkg:generic/lisa@0.6.0",
            "dependsOn": [component["purl"], *(c["purl"] for c in runtime), names["libc6"]["bom-ref"]]} in bom["dependencies"]


def test_sbom_refuses_a_compiled_package_that_is_not_pinned(tmp_path):
    checkouts = ROOT / ".build" / "checkouts"
    if not (checkouts / "swift-nio").is_dir() or not (ROOT / "Package.resolved").exists():
        pytest.skip("needs the debug build's checkouts and Package.resolved")
    source = tmp_path / "src"
    source.mkdir()
    resolved = json.loads((ROOT / "Package.resolved").read_text())
    resolved["pins"] = [p for p in resolved["pins"] if p["identity"] != "swift-nio"]
    (source / "Package.resolved").write_text(json.dumps(resolved))
    scratch = tmp_path / "scratch"
    (scratch / "release" / "NIOCore.build").mkdir(parents=True)
    (scratch / "checkouts").symlink_to(checkouts)
    (scratch / "release" / "NIOCore.build" / "sources").write_text(f"{scratch}/checkouts/swift-nio/Sources/NIOCore/a.swift\n")
    graph = {"identity": "lisa-swift", "name": "lisa-swift", "dependencies": [
        {"identity": "swift-nio", "name": "swift-nio", "url": "https://github.com/apple/swift-nio.git",
         "version": "2.0.0", "path": f"{scratch}/checkouts/swift-nio", "dependencies": []}]}
    (tmp_path / "deps.json").write_text(json.dumps(graph))
    r = subprocess.run([sys.executable, str(ROOT / "scripts" / "sbom.py"), "--version", "0.6.0", "--commit", "c",
                        "--date", "2026-12-07T00:00:00Z", "--source", str(source), "--scratch", str(scratch),
                        "--show-dependencies", str(tmp_path / "deps.json"), "--output", str(tmp_path / "s.json")],
                       capture_output=True, text=True)
    assert r.returncode == 1
    assert "swift-nio is compiled in but not pinned in Package.resolved" in r.stderr
    assert not (tmp_path / "s.json").exists()


def test_systemd_unit_is_hardened():
    unit = ROOT / "deploy" / "systemd" / "lisa.service"
    text = unit.read_text()
    for line in ("User=lisa", "ProtectSystem=strict", "NoNewPrivileges=yes", "PrivateTmp=yes", "ProtectHome=yes",
                 "StateDirectory=lisa", "ReadWritePaths=/var/lib/lisa", "CapabilityBoundingSet=\n",
                 "SystemCallFilter=@system-service", "EnvironmentFile=-/etc/lisa/lisa.env"):
        assert line in text, line
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed (apt-get install systemd)")
    # systemd's own score of the sandbox: 0 (locked down) to 10 (unprotected); "OK" is below 5.
    r = subprocess.run(["systemd-analyze", "security", "--offline=yes", "--threshold=20", str(unit)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr
    assert "Overall exposure level for lisa.service: 1." in r.stdout, r.stdout[-300:]
