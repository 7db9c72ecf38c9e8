#!/usr/bin/env python3
"""LISA's Swift dependencies, read from the committed Package.resolved and the licence
file each package ships (in SwiftPM's checkouts after a build or `swift package resolve`).

    scripts/dependencies.py --json            every pin with version, commit and licence
    scripts/dependencies.py --write-notice    regenerates NOTICE's dependency list
    scripts/dependencies.py --check           fails unless every pin has a licence file of a
                                              licence compatible with Apache-2.0, and NOTICE
                                              lists exactly the pins, versions and licences

The SBOM (scripts/sbom.py) and NOTICE are generated from here, never written by hand.
"""
import argparse
import json
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Licences LISA (Apache-2.0) may depend on and redistribute in a binary.
COMPATIBLE = {
    "Apache-2.0",
    "Apache-2.0 WITH Swift-exception",
    "MIT",
    "BSD-2-Clause",
    "BSD-3-Clause",
    "ISC",
    "Zlib",
}

LICENCE_FILES = ("LICENSE", "LICENSE.txt", "LICENSE.md", "LICENCE", "COPYING", "COPYING.txt")

BEGIN = "<!-- BEGIN GENERATED: scripts/dependencies.py --write-notice -->"
END = "<!-- END GENERATED -->"


def classify(text):
    """The SPDX identifier of a licence text, or None when it is not one we recognise."""
    flat = " ".join(text.split())
    if "Apache License" in flat and "Version 2.0" in flat:
        if "Runtime Library Exception" in flat:
            return "Apache-2.0 WITH Swift-exception"
        return "Apache-2.0"
    if "Permission is hereby granted, free of charge, to any person obtaining a copy" in flat:
        return "MIT"
    if "Redistribution and use in source and binary forms" in flat:
        if "Neither the name" in flat or "may be used to endorse or promote" in flat:
            return "BSD-3-Clause"
        return "BSD-2-Clause"
    if "Permission to use, copy, modify, and/or distribute this software for any" in flat:
        return "ISC"
    if "This software is provided 'as-is', without any express or implied" in flat:
        return "Zlib"
    return None


def repository_name(location):
    name = location.rstrip("/").rsplit("/", 1)[-1]
    return name[:-4] if name.endswith(".git") else name


def find_checkout(checkouts, location, identity):
    """The checkout directory of a pin: SwiftPM names it after the repository."""
    if not os.path.isdir(checkouts):
        return None
    wanted = {repository_name(location).lower(), identity.lower()}
    for entry in sorted(os.listdir(checkouts)):
        if entry.lower() in wanted:
            return os.path.join(checkouts, entry)
    return None


def load(resolved=None, checkouts=None):
    resolved = resolved or os.path.join(ROOT, "Package.resolved")
    checkouts = checkouts or os.path.join(ROOT, ".build", "checkouts")
    with open(resolved, encoding="utf-8") as handle:
        document = json.load(handle)
    result = []
    for pin in document.get("pins", []):
        state = pin.get("state", {})
        location = pin["location"]
        entry = {
            "identity": pin["identity"],
            "name": repository_name(location),
            "location": location,
            "version": state.get("version"),
            "revision": state.get("revision"),
            "license": None,
            "license_file": None,
        }
        directory = find_checkout(checkouts, location, pin["identity"])
        if directory:
            for candidate in LICENCE_FILES:
                path = os.path.join(directory, candidate)
                if os.path.isfile(path):
                    with open(path, encoding="utf-8", errors="replace") as handle:
                        entry["license"] = classify(handle.read())
                    entry["license_file"] = os.path.relpath(path, ROOT)
                    break
        result.append(entry)
    return sorted(result, key=lambda e: e["identity"])


def notice_lines(dependencies):
    lines = [BEGIN, "", "| Package | Version | Commit | Licence | Source |", "|---|---|---|---|---|"]
    for dep in dependencies:
        lines.append(
            f"| {dep['name']} | {dep['version'] or '-'} | {(dep['revision'] or '-')[:12]} | "
            f"{dep['license'] or 'UNKNOWN'} | {dep['location']} |"
        )
    lines += ["", END]
    return lines


def notice_path():
    return os.path.join(ROOT, "NOTICE")


def generated_section(text):
    start, end = text.find(BEGIN), text.find(END)
    if start < 0 or end < start:
        return None
    return text[start:end + len(END)]


def write_notice(dependencies):
    path = notice_path()
    with open(path, encoding="utf-8") as handle:
        text = handle.read()
    section = generated_section(text)
    if section is None:
        sys.exit(f"{path}: no generated section ({BEGIN} … {END})")
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(text.replace(section, "\n".join(notice_lines(dependencies))))


def check(dependencies):
    problems = []
    for dep in dependencies:
        if not dep["revision"]:
            problems.append(f"{dep['identity']}: Package.resolved pins no commit")
        if not dep["license_file"]:
            problems.append(f"{dep['identity']}: no licence file in its checkout (build or `swift package resolve` first)")
        elif dep["license"] is None:
            problems.append(f"{dep['identity']}: {dep['license_file']} is no licence this script recognises; review it")
        elif dep["license"] not in COMPATIBLE:
            problems.append(f"{dep['identity']}: {dep['license']} is not compatible with Apache-2.0")
    with open(notice_path(), encoding="utf-8") as handle:
        section = generated_section(handle.read())
    if section is None:
        problems.append("NOTICE has no generated dependency section")
    elif section != "\n".join(notice_lines(dependencies)):
        problems.append("NOTICE's dependency list differs from Package.resolved: run scripts/dependencies.py --write-notice")
    return problems


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--resolved", help="Package.resolved to read (default: the repository's)")
    parser.add_argument("--checkouts", help="SwiftPM checkouts directory (default: .build/checkouts)")
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--json", action="store_true")
    mode.add_argument("--write-notice", action="store_true")
    mode.add_argument("--check", action="store_true")
    args = parser.parse_args()
    dependencies = load(args.resolved, args.checkouts)
    if args.json:
        json.dump(dependencies, sys.stdout, indent=2)
        print()
    elif args.write_notice:
        write_notice(dependencies)
    else:
        problems = check(dependencies)
        for problem in problems:
            print(f"FAIL: {problem}", file=sys.stderr)
        if problems:
            sys.exit(1)
        print(f"ok: {len(dependencies)} pinned packages, each licensed compatibly with Apache-2.0 and listed in NOTICE")


if __name__ == "__main__":
    main()
