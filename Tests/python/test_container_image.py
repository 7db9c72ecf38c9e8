"""deploy/Dockerfile, .dockerignore and scripts/image.sh describe the same small, non-root image.

scripts/image-check.sh runs the image itself (it needs root, podman or a chroot and a release bundle)."""
import fnmatch
import pathlib
import re
import shlex

ROOT = pathlib.Path(__file__).resolve().parents[2]
DOCKERFILE = (ROOT / "deploy" / "Dockerfile").read_text()
IMAGE_SH = (ROOT / "scripts" / "image.sh").read_text()


def dockerignored(path: str) -> bool:
    """Docker's rule: the last pattern matching the path or one of its parent folders decides."""
    patterns = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
                if line.strip() and not line.startswith("#")]
    parts = path.split("/")
    prefixes = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
    excluded = False
    for pattern in patterns:
        negated = pattern.startswith("!")
        pattern = pattern.lstrip("!")
        if pattern.startswith("**/"):
            matches = any(fnmatch.fnmatchcase(p.split("/")[-1], pattern[3:]) for p in prefixes)
        else:
            matches = any(fnmatch.fnmatchcase(p, pattern) and p.count("/") == pattern.count("/") for p in prefixes)
        if matches:
            excluded = not negated
    return excluded


def final_stage(dockerfile: str) -> str:
    return re.split(r"(?m)^FROM ", dockerfile)[-1]


def instruction_lines(stage: str) -> list[str]:
    return re.sub(r"\\\n\s*", " ", stage).splitlines()


def test_dockerignore_sends_sources_and_the_bundle_but_no_build_outputs():
    for path in [".build/debug/LISAServe", ".build-release/scratch/x", ".venv/bin/python", ".venv-pg/bin/pg_ctl",
                 ".lisa/lisa.sqlite", ".git/HEAD", "Tests/python/artifacts/run.log", "dist/lisa-0.6.0-oci.tar",
                 "Tests/python/__pycache__/conftest.cpython-311.pyc"]:
        assert dockerignored(path), f"{path} would be sent to the build"
    for path in ["Package.swift", "Package.resolved", "Sources/LISAServe/LISAServe.swift", "Documentation/Install.md",
                 "Tests/python/conftest.py", "dist/lisa-0.6.0-linux-x86_64.tar.gz"]:
        assert not dockerignored(path), f"{path} would be left out of the build"


def test_dockerfile_runtime_stage_is_non_root_read_only_and_health_checked():
    stage = final_stage(DOCKERFILE)
    lines = instruction_lines(stage)
    assert "USER 10001:10001" in lines
    assert "COPY . ." not in stage, "the runtime stage must take only the binaries"
    assert any(line.startswith("VOLUME") and '"/var/lib/lisa"' in line and '"/tmp"' in line for line in lines)
    healthcheck = next(line for line in lines if line.startswith("HEALTHCHECK"))
    assert "/health/readiness" in healthcheck and "curl" not in healthcheck
    routes = (ROOT / "Sources" / "LISAHummingbird" / "LISARoutes.swift").read_text()
    assert 'router.get("/health/readiness")' in routes
    assert 'ENTRYPOINT ["/opt/lisa/bin/LISAServe"]' in lines
    assert "EXPOSE 8080" in lines


def test_image_sh_configures_the_image_as_the_dockerfile_does():
    env_line = next(line for line in instruction_lines(final_stage(DOCKERFILE)) if line.startswith("ENV "))
    dockerfile_env = dict(item.split("=", 1) for item in shlex.split(env_line[4:]))
    image_env = dict(m.split("=", 1) for m in re.findall(r"--config\.env ([^\s)]+)", IMAGE_SH))
    assert image_env == dockerfile_env
    assert dockerfile_env["LISA_HOST"] == "0.0.0.0" and dockerfile_env["LISA_DATA_DIR"] == "/var/lib/lisa"
    assert "--config.user 10001:10001" in IMAGE_SH
    assert sorted(re.findall(r"--config\.volume ([^\s)]+)", IMAGE_SH)) == ["/tmp", "/var/lib/lisa"]
    assert "--config.entrypoint /opt/lisa/bin/LISAServe" in IMAGE_SH
    assert "--config.exposedports 8080/tcp" in IMAGE_SH
    for package in ["ca-certificates", "poppler-utils", "tzdata"]:
        assert package in IMAGE_SH and package in DOCKERFILE
