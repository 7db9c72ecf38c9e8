#!/usr/bin/env python3
"""Writes the CycloneDX 1.5 SBOM of a LISA release bundle.

    scripts/sbom.py --version 0.6.0 --commit HASH --date 2026-12-07T18:00:00Z \
        --source .build-release/src --scratch .build-release/scratch \
        --show-dependencies deps.json --binary bin/LISAServe --binary bin/lisactl \
        --output sbom.cdx.json

Components:
- every Swift package compiled into the binaries: the packages of the dependency graph
  (`swift package show-dependencies --format json` of the release package) whose sources
  the release build compiled (the `<module>.build` folders of the scratch path), each with
  the version and commit pinned in Package.resolved and the licence found by
  scripts/dependencies.py (never written by hand);
- the Swift runtime, Dispatch, Foundation and ICU that --static-swift-stdlib links in from
  the toolchain (`swift --version`), as the swiftlang repositories at the toolchain's tag;
- the shared libraries the binaries still load from the system (ELF NEEDED entries), as
  the Debian packages that provide them;
- the optional system tools LISA calls at run time (poppler-utils' pdftotext).
LISA itself is the metadata component. With cyclonedx-python-lib[json-validation]
importable, the document is validated against the CycloneDX 1.5 JSON schema.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import uuid
from pathlib import Path

SCRIPTS = Path(__file__).resolve().parent

# Shared objects the binaries may need from the system, and the Debian (bookworm)
# packages that hold them.
SYSTEM_LIBRARIES = {
    "libc.so.6": "libc6", "libm.so.6": "libc6", "libpthread.so.0": "libc6", "libdl.so.2": "libc6",
    "librt.so.1": "libc6", "libutil.so.1": "libc6", "ld-linux-x86-64.so.2": "libc6",
    "ld-linux-aarch64.so.1": "libc6", "libstdc++.so.6": "libstdc++6", "libgcc_s.so.1": "libgcc-s1",
    "libz.so.1": "zlib1g", "libcurl.so.4": "libcurl4", "libxml2.so.2": "libxml2",
    "libuuid.so.1": "libuuid1", "libsqlite3.so.0": "libsqlite3-0",
}
PACKAGE_DESCRIPTIONS = {
    "libc6": ("GNU C Library", "LGPL-2.1-or-later"),
    "libstdc++6": ("GNU C++ standard library", "GPL-3.0-or-later WITH GCC-exception-3.1"),
    "libgcc-s1": ("GCC support library", "GPL-3.0-or-later WITH GCC-exception-3.1"),
    "zlib1g": ("zlib compression library", "Zlib"),
    "libcurl4": ("libcurl", "curl"),
    "libxml2": ("libxml2", "MIT"),
    "libuuid1": ("libuuid", "BSD-3-Clause"),
    "libsqlite3-0": ("SQLite", "blessing"),
}


# What --static-swift-stdlib links in from the toolchain (the same repositories, tagged
# swift-<version>-RELEASE, make every toolchain).
TOOLCHAIN_RUNTIME = [
    ("swift", "swiftlang/swift", "The Swift runtime and standard library (Concurrency, Synchronization, _StringProcessing, Glibc)",
     "Apache-2.0 WITH Swift-exception"),
    ("swift-corelibs-libdispatch", "swiftlang/swift-corelibs-libdispatch", "Dispatch", "Apache-2.0 WITH Swift-exception"),
    ("swift-corelibs-foundation", "swiftlang/swift-corelibs-foundation", "Foundation, CoreFoundation",
     "Apache-2.0 WITH Swift-exception"),
    ("swift-foundation", "swiftlang/swift-foundation", "FoundationEssentials", "Apache-2.0 WITH Swift-exception"),
    ("swift-foundation-icu", "swiftlang/swift-foundation-icu", "ICU and its data (_FoundationICU)", "Unicode-3.0"),
]


def toolchain_version() -> str:
    out = subprocess.run(["swift", "--version"], check=True, capture_output=True, text=True).stdout
    m = re.search(r"Swift version (\d+\.\d+(?:\.\d+)?)", out)
    if not m:
        raise SystemExit(f"sbom.py: cannot read the Swift version from: {out!r}")
    return m.group(1)


def github_slug(url: str) -> tuple[str, str] | None:
    m = re.match(r"^(?:https?://|git@)(github\.com)[/:]([^/]+)/([^/]+?)(?:\.git)?/?$", url)
    return (m.group(2), m.group(3)) if m else None


def purl(url: str, version: str | None) -> str | None:
    slug = github_slug(url)
    if not slug or not version:
        return None
    return f"pkg:swift/github.com/{slug[0]}/{slug[1]}@{version}"


def graph(show_dependencies: dict) -> tuple[dict, dict]:
    """Every package of the graph by identity, and each one's direct dependencies."""
    nodes: dict[str, dict] = {}
    edges: dict[str, set[str]] = {}

    def walk(node: dict) -> None:
        ident = node["identity"].lower()
        edges.setdefault(ident, set())
        for dep in node.get("dependencies", []):
            edges[ident].add(dep["identity"].lower())
            if dep["identity"].lower() not in nodes:
                nodes[dep["identity"].lower()] = dep
                walk(dep)
    walk(show_dependencies)
    return nodes, edges


def compiled_packages(scratch: Path, checkouts: dict[str, str]) -> set[str]:
    """Identities of the packages whose sources the release build compiled."""
    seen: set[str] = set()
    pattern = re.compile(r"/checkouts/([^/\"\s]+)/")
    build = scratch / "release"
    for module in build.glob("*.build"):
        for f in module.iterdir():
            if f.name in ("sources", "output-file-map.json") or f.suffix == ".d":
                try:
                    text = f.read_text(errors="replace")
                except OSError:
                    continue
                for name in pattern.findall(text):
                    if name in checkouts:
                        seen.add(checkouts[name])
    return seen


def needed_libraries(binary: Path) -> list[str]:
    out = subprocess.run(["readelf", "-d", str(binary)], check=True, capture_output=True, text=True).stdout
    return re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", out)


def dependency_licences(source: Path, scratch: Path) -> dict[str, dict]:
    """scripts/dependencies.py's record of each pinned package (version, revision, licence)."""
    script = source / "scripts" / "dependencies.py"
    if not script.exists():
        script = SCRIPTS / "dependencies.py"
    out = subprocess.run(
        [sys.executable, str(script), "--json", "--resolved", str(source / "Package.resolved"),
         "--checkouts", str(scratch / "checkouts")],
        check=True, capture_output=True, text=True).stdout
    return {record["identity"].lower(): record for record in json.loads(out)}


def licence_entry(spdx: str | None) -> list[dict]:
    if not spdx:
        return []
    if re.fullmatch(r"[A-Za-z0-9.+-]+", spdx):
        return [{"license": {"id": spdx}}]
    return [{"expression": spdx}]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--version", required=True)
    p.add_argument("--commit", required=True)
    p.add_argument("--date", required=True, help="ISO-8601 UTC build date")
    p.add_argument("--source", required=True, type=Path, help="the release package (with Package.resolved)")
    p.add_argument("--scratch", required=True, type=Path, help="its build's scratch path")
    p.add_argument("--show-dependencies", required=True, type=Path)
    p.add_argument("--binary", action="append", default=[], type=Path)
    p.add_argument("--output", required=True, type=Path)
    p.add_argument("--toolchain-version", help="the Swift toolchain whose runtime is linked in (default: swift --version)")
    p.add_argument("--require-validation", action="store_true",
                   help="fail when cyclonedx-python-lib[json-validation] is not importable")
    args = p.parse_args()

    nodes, edges = graph(json.loads(args.show_dependencies.read_text()))
    checkouts = {}
    for ident, node in nodes.items():
        if node.get("path"):
            checkouts[Path(node["path"]).name] = ident
    compiled = compiled_packages(args.scratch, checkouts)
    if not compiled:
        print("sbom.py: found no compiled package under the scratch path's release build", file=sys.stderr)
        return 1
    records = dependency_licences(args.source, args.scratch)

    components = []
    refs: dict[str, str] = {}
    for ident in sorted(compiled):
        node = nodes[ident]
        record = records.get(ident)
        if record is None:
            print(f"sbom.py: {ident} is compiled in but not pinned in Package.resolved", file=sys.stderr)
            return 1
        if not record.get("license"):
            print(f"sbom.py: {ident} has no licence identified by dependencies.py", file=sys.stderr)
            return 1
        url = record.get("location") or node.get("url")
        version = record.get("version") or node.get("version")
        ref = purl(url, version) or f"swift:{ident}@{version}"
        refs[ident] = ref
        component = {
            "type": "library",
            "bom-ref": ref,
            "name": node.get("name", ident),
            "version": version,
            "scope": "required",
            "licenses": licence_entry(record["license"]),
            "externalReferences": [{"type": "vcs", "url": url, "comment": f"revision {record['revision']}"}],
            "properties": [{"name": "swift:package:identity", "value": ident},
                           {"name": "swift:package:revision", "value": record["revision"]}],
        }
        if purl(url, version):
            component["purl"] = purl(url, version)
        slug = github_slug(url)
        if slug:
            component["group"] = f"github.com/{slug[0]}"
        components.append(component)

    toolchain = args.toolchain_version or toolchain_version()
    runtime_refs = []
    for name, slug, what, licence in TOOLCHAIN_RUNTIME:
        tag = f"swift-{toolchain}-RELEASE"
        ref = f"pkg:github/{slug}@{tag}"
        runtime_refs.append(ref)
        components.append({
            "type": "library",
            "bom-ref": ref,
            "group": "github.com/swiftlang",
            "name": name,
            "version": tag,
            "purl": ref,
            "scope": "required",
            "description": f"{what}: linked in statically from the Swift {toolchain} toolchain (--static-swift-stdlib)",
            "licenses": licence_entry(licence),
        })

    lisa_ref = f"pkg:generic/lisa@{args.version}"
    system: dict[str, list[str]] = {}
    for binary in args.binary:
        for soname in needed_libraries(binary):
            system.setdefault(SYSTEM_LIBRARIES.get(soname, soname), []).append(f"{binary.name}: {soname}")
    for package in sorted(system):
        description, licence = PACKAGE_DESCRIPTIONS.get(package, (None, None))
        component = {
            "type": "library",
            "bom-ref": f"pkg:deb/debian/{package}?distro=debian-12",
            "name": package,
            "purl": f"pkg:deb/debian/{package}?distro=debian-12",
            "scope": "required",
            "description": (description + "; " if description else "")
            + "loaded from the system by " + ", ".join(sorted(set(system[package]))),
            "licenses": licence_entry(licence),
        }
        components.append(component)
    components.append({
        "type": "application",
        "bom-ref": "pkg:deb/debian/poppler-utils?distro=debian-12",
        "name": "poppler-utils",
        "purl": "pkg:deb/debian/poppler-utils?distro=debian-12",
        "scope": "optional",
        "description": "pdftotext, run by LISAServe to read PDF uploads (rag.ingestion.pdftotextPath); "
                       "without it PDF uploads are refused with 415 and other documents are unaffected",
        "licenses": licence_entry("GPL-2.0-or-later"),
    })

    root_deps = sorted(refs[d] for d in edges.get(next(iter(edges)), set()) if d in refs)
    dependencies = [{"ref": lisa_ref, "dependsOn": root_deps + runtime_refs + sorted(
        c["bom-ref"] for c in components if c["bom-ref"].startswith("pkg:deb/") and c["scope"] == "required")}]
    for ident in sorted(compiled):
        dependencies.append({"ref": refs[ident], "dependsOn": sorted(refs[d] for d in edges.get(ident, ()) if d in refs)})

    bom = {
        "$schema": "http://cyclonedx.org/schema/bom-1.5.schema.json",
        "bomFormat": "CycloneDX",
        "specVersion": "1.5",
        "serialNumber": f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, f'lisa/{args.version}/{args.commit}')}",
        "version": 1,
        "metadata": {
            "timestamp": args.date,
            "tools": {"components": [{"type": "application", "name": "scripts/sbom.py",
                                      "description": "LISA's SBOM writer"}]},
            "component": {
                "type": "application",
                "bom-ref": lisa_ref,
                "name": "lisa",
                "version": args.version,
                "purl": lisa_ref,
                "description": "LISA, an LLM inference gateway: LISAServe and lisactl",
                "licenses": licence_entry("Apache-2.0"),
                "properties": [{"name": "lisa:commit", "value": args.commit},
                               {"name": "lisa:build-date", "value": args.date}],
            },
        },
        "components": components,
        "dependencies": dependencies,
    }
    text = json.dumps(bom, indent=2) + "\n"
    validate(text, args.require_validation)
    args.output.write_text(text)
    swift = sum(1 for c in components if c.get("purl", "").startswith("pkg:swift/"))
    print(f"sbom.py: {args.output}: {swift} Swift packages, the Swift {toolchain} runtime ({len(TOOLCHAIN_RUNTIME)} components), "
          f"{len(system)} system packages, poppler-utils (optional)")
    return 0


def validate(text: str, required: bool) -> None:
    try:
        from cyclonedx.schema import SchemaVersion
        from cyclonedx.validation.json import JsonStrictValidator
    except ImportError:
        if required:
            raise SystemExit("sbom.py: cyclonedx-python-lib[json-validation] is not installed: cannot check the SBOM")
        print("sbom.py: cyclonedx-python-lib[json-validation] is not installed: SBOM not schema-checked", file=sys.stderr)
        return
    error = JsonStrictValidator(SchemaVersion.V1_5).validate_str(text)
    if error is not None:
        raise SystemExit(f"sbom.py: the SBOM does not match the CycloneDX 1.5 schema: {error}")
    print("sbom.py: valid CycloneDX 1.5 (JSON schema, strict)")


if __name__ == "__main__":
    sys.exit(main())
