"""The Dockerfile: hadolint, what the image promises (non-root, entrypoint, ports and volume in
step with the service's settings), and a build context that really builds the two wheels.

No Docker engine here: the image itself is not built (docs/deploy.md lists what is not verified).
The HEALTHCHECK command is run against a live server in test_deploy_live.py.
"""

from __future__ import annotations

import fnmatch
import json
import re
import shutil
import sys
import zipfile
from pathlib import Path

import pytest
from deploy_support import DOCKERFILE, ROOT, binary, run
from lifelong.config import Settings, load_settings
from lifelong.model.fast.build import CACHE_ENV


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined, comments dropped."""
    out, pending = [], ""
    for line in DOCKERFILE.read_text().splitlines():
        stripped = line.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        full = pending + stripped
        pending = ""
        keyword, _, args = full.partition(" ")
        out.append((keyword.upper(), args.strip()))
    return out


def final_stage() -> list[tuple[str, str]]:
    steps = instructions()
    last_from = max(i for i, (k, _) in enumerate(steps) if k == "FROM")
    return steps[last_from:]


def env_of(stage: list[tuple[str, str]]) -> dict[str, str]:
    env = {}
    for keyword, args in stage:
        if keyword == "ENV":
            for key, value in re.findall(r'(\w+)=("[^"]*"|\S+)', args):
                env[key] = value.strip('"')
    return env


def test_hadolint_passes():
    hadolint = binary("hadolint")
    result = run(hadolint, "--no-color", DOCKERFILE)
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_catches_a_bad_dockerfile(tmp_path):
    """The linter really runs: an unpinned apt-get without clean-up is reported."""
    hadolint = binary("hadolint")
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM debian\nRUN apt-get update && apt-get install -y curl\n")
    result = run(hadolint, "--no-color", bad)
    assert result.returncode != 0
    assert "DL3008" in result.stdout  # pin versions in apt-get install


def test_two_stages_on_the_same_slim_python():
    steps = instructions()
    froms = [args for keyword, args in steps if keyword == "FROM"]
    assert froms == ["${PYTHON_IMAGE} AS build", "${PYTHON_IMAGE} AS runtime"]
    assert ("ARG", "PYTHON_IMAGE=python:3.11-slim") in steps


def test_torch_comes_from_the_cpu_index_and_is_pinned_for_the_rest():
    steps = instructions()
    runs = [args for keyword, args in steps if keyword == "RUN"]
    torch = next(r for r in runs if '"torch==' in r)
    assert '--index-url "${TORCH_INDEX_URL}"' in torch
    assert ("ARG", "TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu") in steps
    install = next(r for r in runs if "/src/clients/python /src" in r)
    assert "--constraint /tmp/constraints.txt" in install  # the CUDA build can never sneak in


def test_runtime_is_non_root_with_the_service_entrypoint():
    stage = dict(final_stage())
    assert stage["USER"] == "10001:10001"
    assert json.loads(stage["ENTRYPOINT"]) == ["lifelong"]
    assert json.loads(stage["CMD"]) == ["serve"]
    assert json.loads(stage["VOLUME"]) == ["/var/lib/lifelong"]
    assert "useradd --system --uid 10001" in stage["RUN"]


def test_ports_volume_and_environment_match_the_service_settings():
    """EXPOSE and the image's LIFELONG_* variables agree with lifelong.config: every variable is a
    real setting, and the ports exposed are the ones the settings listen on."""
    stage = final_stage()
    env = env_of(stage)
    lifelong_env = {k: v for k, v in env.items() if k.startswith("LIFELONG_")}
    settings = load_settings(environ=lifelong_env)  # raises on an unknown value
    assert str(settings.checkpoint_dir) == "/var/lib/lifelong"
    exposed = {int(p) for k, a in stage if k == "EXPOSE" for p in a.split()}
    grpc_port = int(settings.grpc_address.rsplit(":", 1)[1])
    assert exposed == {grpc_port, settings.metrics_port}
    # and the image does not move them away from the service's own defaults
    defaults = Settings()
    assert grpc_port == int(defaults.grpc_address.rsplit(":", 1)[1])
    assert settings.metrics_port == defaults.metrics_port
    kernel_cache = lifelong_env.pop(CACHE_ENV)  # the compiled kernel's cache, not a setting
    assert kernel_cache.startswith("/var/lib/lifelong/"), "the kernel cache must be writable"
    unknown = [
        k
        for k in lifelong_env
        if k.removeprefix("LIFELONG_").lower() not in Settings.__dataclass_fields__
    ]
    assert not unknown, f"not settings of lifelong serve: {unknown}"


def healthcheck_command() -> list[str]:
    stage = dict(final_stage())
    options, _, command = stage["HEALTHCHECK"].partition(" CMD ")
    assert "--start-period=" in options and "--timeout=" in options
    return json.loads(command)


def test_healthcheck_is_exec_form_python_grpc_health():
    command = healthcheck_command()
    assert command[:2] == ["python", "-c"]
    assert "grpc_health.v1" in command[2]
    compile(command[2], "<HEALTHCHECK>", "exec")  # valid Python


# -- build context ------------------------------------------------------------------------------


def dockerignore_patterns() -> list[str]:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    patterns = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    assert not any(p.startswith("!") for p in patterns), "negations: extend ignored() first"
    return patterns


def ignored(relative: str, patterns: list[str]) -> bool:
    """Whether .dockerignore drops `relative` (or a folder holding it). Enough of Docker's rules
    for this file: `*`, `?`, `**/` prefixes, no negations."""
    parts = relative.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    for pattern in patterns:
        pattern = pattern.rstrip("/")
        for prefix in prefixes:
            if fnmatch.fnmatchcase(prefix, pattern):
                return True
            if pattern.startswith("**/") and fnmatch.fnmatchcase(
                prefix.split("/")[-1], pattern[3:]
            ):
                return True
    return False


def copy_sources() -> list[str]:
    sources = []
    for keyword, args in instructions():
        if keyword == "COPY" and not args.startswith("--from"):
            sources += args.split()[:-1]
    return sources


def test_copy_sources_exist_and_are_in_the_build_context():
    patterns = dockerignore_patterns()
    sources = copy_sources()
    assert set(sources) == {"clients/python", "pyproject.toml", "README.md", "service"}
    for source in sources:
        assert (ROOT / source).exists(), source
        assert not ignored(source, patterns), f".dockerignore drops {source}, which COPY needs"
    for heavy in (".venv", ".git", ".cache", "tests", "service/lifelong.egg-info"):
        assert ignored(heavy, patterns), f"{heavy} would be sent to the Docker daemon"


def build_context(tmp_path: Path) -> Path:
    """What `docker build` would see of the COPY sources, .dockerignore applied."""
    patterns = dockerignore_patterns()
    context = tmp_path / "context"
    for source in copy_sources():
        path = ROOT / source
        files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
        for file in files:
            relative = file.relative_to(ROOT).as_posix()
            if not ignored(relative, patterns):
                (context / relative).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(file, context / relative)
    return context


@pytest.mark.slow
def test_the_build_context_builds_both_wheels(tmp_path):
    """`pip install ./clients/python .` as in the build stage, minus the index: both wheels build
    from exactly the files the image gets, with the stubs, the server and the entry point."""
    context = build_context(tmp_path)
    out = tmp_path / "wheels"
    result = run(
        sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
        "-w", out, context / "clients" / "python", context,
        timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    wheels = {w.name.split("-")[0]: w for w in out.glob("*.whl")}
    assert set(wheels) == {"lifelong", "lifelong_client"}
    with zipfile.ZipFile(wheels["lifelong_client"]) as z:
        assert "lifelong/v1/lifelong_pb2.py" in z.namelist()
        assert "lifelong/client.py" in z.namelist() or any(
            n.startswith("lifelong/client/") for n in z.namelist()
        )
    with zipfile.ZipFile(wheels["lifelong"]) as z:
        names = z.namelist()
        assert "lifelong/cli.py" in names and "lifelong/app.py" in names
        # Files the service reads at run time besides its modules (learner.py compiles
        # kernel.c at first use): a non-editable install, as in the image, must have them.
        needed = [
            p.relative_to(context / "service").as_posix()
            for p in (context / "service" / "lifelong").rglob("*")
            if p.is_file() and p.suffix in (".c", ".h", ".json", ".toml")
        ]
        absent = [n for n in needed if n not in names]
        assert not absent, (
            f"the wheel (and so the image) lacks {absent}: add them to "
            "[tool.setuptools.package-data] in pyproject.toml"
        )
        assert not any(n.startswith("lifelong/v1/") for n in names)  # the client's, not twice
        entry_points = z.read(next(n for n in names if n.endswith("entry_points.txt"))).decode()
        assert "lifelong = lifelong.cli:main" in entry_points
        requires = z.read(next(n for n in names if n.endswith("METADATA"))).decode()
        assert "Requires-Dist: lifelong-client" in requires
