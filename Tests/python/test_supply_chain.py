"""The supply-chain checks the test command runs: NOTICE and the licences against the
committed Package.resolved (scripts/dependencies.py), and --version."""
import json
import os
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPT = os.path.join(ROOT, "scripts", "dependencies.py")
sys.path.insert(0, os.path.join(ROOT, "scripts"))
import dependencies  # noqa: E402


def run_check(root):
    return subprocess.run([sys.executable, os.path.join(root, "scripts", "dependencies.py"), "--check",
                           "--checkouts", os.path.join(ROOT, ".build", "checkouts")],
                          capture_output=True, text=True)


@pytest.fixture
def tree(tmp_path):
    """A copy of what the check reads: the script, Package.resolved and NOTICE."""
    (tmp_path / "scripts").mkdir()
    shutil.copy(SCRIPT, tmp_path / "scripts" / "dependencies.py")
    for name in ("Package.resolved", "NOTICE"):
        shutil.copy(os.path.join(ROOT, name), tmp_path / name)
    return tmp_path


def test_the_committed_tree_passes():
    if not os.path.isdir(os.path.join(ROOT, ".build", "checkouts")):
        pytest.skip("no checkouts: build first")
    result = run_check(ROOT)
    assert result.returncode == 0, result.stderr
    pins = json.load(open(os.path.join(ROOT, "Package.resolved")))["pins"]
    assert f"ok: {len(pins)} pinned packages" in result.stdout
    listed = [line for line in open(os.path.join(ROOT, "NOTICE")) if line.startswith("| ") and "github.com" in line]
    assert len(listed) == len(pins)


def test_a_changed_pin_fails_until_notice_is_regenerated(tree):
    if not os.path.isdir(os.path.join(ROOT, ".build", "checkouts")):
        pytest.skip("no checkouts: build first")
    resolved = json.loads((tree / "Package.resolved").read_text())
    resolved["pins"][0]["state"]["version"] = "99.0.0"
    (tree / "Package.resolved").write_text(json.dumps(resolved))
    result = run_check(str(tree))
    assert result.returncode == 1
    assert "NOTICE's dependency list differs from Package.resolved" in result.stderr


def test_a_pin_without_a_checkout_fails(tree):
    resolved = json.loads((tree / "Package.resolved").read_text())
    resolved["pins"].append({"identity": "left-pad", "kind": "remoteSourceControl",
                             "location": "https://github.com/example/left-pad.git",
                             "state": {"revision": "0" * 40, "version": "1.0.0"}})
    (tree / "Package.resolved").write_text(json.dumps(resolved))
    result = run_check(str(tree))
    assert result.returncode == 1
    assert "left-pad: no licence file in its checkout" in result.stderr


def test_licences_are_told_apart():
    mit = "Permission is hereby granted, free of charge, to any person obtaining a copy of this software"
    assert dependencies.classify(mit) == "MIT"
    assert dependencies.classify(open(os.path.join(ROOT, "LICENSE")).read()) == "Apache-2.0"
    assert dependencies.classify("Apache License\nVersion 2.0\n## Runtime Library Exception to the Apache 2.0 License") \
        == "Apache-2.0 WITH Swift-exception"
    gpl = "GNU GENERAL PUBLIC LICENSE Version 3, 29 June 2007"
    assert dependencies.classify(gpl) is None
    assert "GPL-3.0" not in dependencies.COMPATIBLE


def test_version_flag_prints_version_and_build():
    bin_dir = os.environ.get("LISA_BIN_DIR")
    if not bin_dir:
        pytest.skip("LISA_BIN_DIR not set")
    version = open(os.path.join(ROOT, "Sources", "LISAAPI", "Version.swift")).read().split('number = "')[1].split('"')[0]
    for binary in ("LISAServe", "lisactl"):
        out = subprocess.run([os.path.join(bin_dir, binary), "--version"], capture_output=True, text=True, check=True)
        # A checkout build carries no release stamp; scripts/release-check.sh checks a stamped one.
        assert out.stdout.strip() == f"{version} (development build)"


def test_the_changelog_names_the_source_version():
    version = open(os.path.join(ROOT, "Sources", "LISAAPI", "Version.swift")).read().split('number = "')[1].split('"')[0]
    changelog = open(os.path.join(ROOT, "CHANGELOG.md")).read()
    assert f"## [{version}] - " in changelog
    assert changelog.index("## [Unreleased]") < changelog.index(f"## [{version}]")
