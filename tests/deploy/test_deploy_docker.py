"""The Dockerfile: hadolint, what the image promises (non-root, entrypoint, ports and volume in
step with the service's settings, a kernel compiled in the build stage and no compiler in the
runtime), and a build context that really builds the two wheels, whose kernel then builds and
loads as the image's stages would.

No Docker engine here: the image itself is not built (docs/deploy.md lists what is not verified).
The HEALTHCHECK command is run against a live server in test_deploy_live.py.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shlex
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


def build_stage() -> list[tuple[str, str]]:
    steps = instructions()
    last_from = max(i for i, (k, _) in enumerate(steps) if k == "FROM")
    return steps[:last_from]


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
    lifelong_env.pop(CACHE_ENV)  # where the compiled kernel is, not a setting (tested below)
    unknown = [
        k
        for k in lifelong_env
        if k.removeprefix("LIFELONG_").lower() not in Settings.__dataclass_fields__
    ]
    assert not unknown, f"not settings of lifelong serve: {unknown}"


KERNEL_DIR = "/opt/lifelong/kernel"
KERNEL_BUILD = "python -m lifelong.model.fast.build"
COMPILERS = {"gcc", "g++", "cc", "clang", "tcc", "build-essential", "libc6-dev"}


def installed_packages(stage: list[tuple[str, str]]) -> set[str]:
    """Package names of the stage's `apt-get install` commands."""
    names = set()
    for keyword, args in stage:
        if keyword == "RUN":
            for command in re.split(r"&&|;", args):
                words = shlex.split(command)
                if words[:1] == ["apt-get"] and "install" in words:
                    names |= {w for w in words[words.index("install") + 1 :] if w[0] != "-"}
    return names


def test_kernel_is_compiled_in_the_build_stage():
    """After the service is installed, with the compiler only this stage has, into KERNEL_DIR."""
    stage = build_stage()
    runs = [args for keyword, args in stage if keyword == "RUN"]
    assert {"gcc", "libc6-dev"} <= installed_packages(stage)
    build = next(i for i, r in enumerate(runs) if KERNEL_BUILD in r)
    install = next(i for i, r in enumerate(runs) if "/src/clients/python /src" in r)
    assert install < build
    assert f"{CACHE_ENV}={KERNEL_DIR} {KERNEL_BUILD}" in runs[build]


def test_runtime_has_no_compiler_and_loads_the_copied_kernel():
    """No compiler installed in the final stage (python:3.11-slim has none: not verifiable here),
    the kernel's directory copied from the build stage, and the learner pointed at it."""
    stage = final_stage()
    assert not installed_packages(stage) & COMPILERS
    assert not any(k == "RUN" and "apt-get" in a for k, a in stage), "installs into the runtime"
    assert env_of(stage)[CACHE_ENV] == KERNEL_DIR
    copied = [a.split()[1:] for k, a in stage if k == "COPY" and a.startswith("--from=build ")]
    assert any(
        src == KERNEL_DIR or KERNEL_DIR.startswith(src.rstrip("/") + "/")
        for src, dest in copied
        if src == dest  # the same place: the path the build stage compiled into
    ), f"{KERNEL_DIR} is not copied from the build stage: {copied}"


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


@pytest.fixture(scope="module")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Path]]:
    """`pip install ./clients/python .` as in the build stage, minus the index: the build context
    and the two wheels built from exactly its files, by distribution name."""
    tmp = tmp_path_factory.mktemp("image")
    context = build_context(tmp)
    out = tmp / "wheels"
    result = run(
        sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
        "-w", out, context / "clients" / "python", context,
        timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return context, {w.name.split("-")[0]: w for w in out.glob("*.whl")}


@pytest.mark.slow
def test_the_build_context_builds_both_wheels(wheels):
    """Both wheels, with the stubs, the server, the entry point and the files read at run time."""
    context, wheels = wheels
    assert set(wheels) == {"lifelong", "lifelong_client"}
    with zipfile.ZipFile(wheels["lifelong_client"]) as z:
        assert "lifelong/v1/lifelong_pb2.py" in z.namelist()
        assert "lifelong/client.py" in z.namelist() or any(
            n.startswith("lifelong/client/") for n in z.namelist()
        )
    with zipfile.ZipFile(wheels["lifelong"]) as z:
        names = z.namelist()
        assert "lifelong/cli.py" in names and "lifelong/app.py" in names
        # Files the service reads at run time besides its modules (the build stage compiles
        # kernel.c): a non-editable install, as in the image, must have them.
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


LEARN = """
import json
import numpy as np
from lifelong.model.config import LearnerConfig
from lifelong.model.fast import build
from lifelong.model.learner import LifelongClassifier
try:
    compiler = build._compiler()
except build.KernelUnavailable:
    compiler = None
rng = np.random.default_rng(0)
X = rng.normal(size=(2000, 6))
model = LifelongClassifier(LearnerConfig(hidden=(16, 16)))
model.learn_many(X, (X[:, 0] > 0).astype(int))
print(json.dumps({"module": build.__file__, "compiler": compiler, "fast": model._fast is not None,
                  "unavailable": model.fast_path_unavailable, "library": build.load()._name}))
"""


def tree(path: Path) -> dict[str, tuple[int, int]]:
    return {p.name: (p.stat().st_size, p.stat().st_mtime_ns) for p in path.iterdir()}


@pytest.mark.slow
def test_the_wheel_kernel_is_built_then_used_without_a_compiler(wheels, tmp_path):
    """The image's two stages as far as possible without an engine: the server's wheel installed
    (--no-deps: its dependencies come from this environment), the kernel built by the build
    stage's command, then a learner with what the runtime stage has: no compiler on PATH,
    LIFELONG_KERNEL_CACHE set, the kernel directory read-only (not enforced for root, so nothing
    in it may change either). The learner must learn through the portable kernel."""
    _context, wheels = wheels
    site = tmp_path / "site-packages"
    result = run(
        sys.executable, "-m", "pip", "install", "--no-deps", "--no-compile", "-q",
        "--target", site, wheels["lifelong"],
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    kernels = tmp_path / "opt" / "lifelong" / "kernel"
    env = {k: v for k, v in os.environ.items() if k != "CC"}
    env |= {"PYTHONPATH": str(site), CACHE_ENV: str(kernels)}
    python, *command = shlex.split(KERNEL_BUILD)
    assert python == "python"
    built = run(sys.executable, *command, env=env)  # the build stage (gcc on PATH)
    assert built.returncode == 0, built.stderr
    paths = [Path(line) for line in built.stdout.split()]
    assert paths and all(p.parent == kernels and p.name.startswith("kernel-") for p in paths)
    assert sorted(kernels.iterdir()) == sorted(paths)

    no_compiler = tmp_path / "bin"
    no_compiler.mkdir()
    before = tree(kernels)
    kernels.chmod(0o555)
    learned = run(sys.executable, "-c", LEARN, env=env | {"PATH": str(no_compiler)})
    kernels.chmod(0o755)
    assert learned.returncode == 0, learned.stderr
    report = json.loads(learned.stdout)
    assert report["module"].startswith(str(site))  # the wheel's code, not the source tree's
    assert report["compiler"] is None
    assert report["unavailable"] is None and report["fast"]
    assert Path(report["library"]) in paths
    assert tree(kernels) == before
