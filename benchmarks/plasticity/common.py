"""What both benchmarks share: building learners per method, probing hidden activations, the
per-layer statistics, CSV/JSON output and running (method, seed) jobs in parallel."""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"

# Method name -> the plasticity methods switched on (LearnerConfig.plasticity); "default" is
# LearnerConfig's own default for everything except what the benchmark fixes (architecture, seed).
METHODS: dict[str, tuple[str, ...] | None] = {
    "bp": (),
    "cbp": ("cbp",),
    "snp": ("shrink_perturb",),
    "l2": ("l2_init",),
    "cbp+l2": ("cbp", "l2_init"),
    "upgd": ("upgd",),
    "guided": ("guided",),  # needs --set guided:guidance_file=... ("{seed}" is the run's seed)
    "default": None,
}
LABELS = {
    "bp": "backprop",
    "cbp": "continual backprop",
    "snp": "shrink & perturb",
    "l2": "L2 to init",
    "cbp+l2": "CBP + L2 to init",
    "upgd": "UPGD",
    "guided": "guided (GTL scouts)",
    "default": "default config (CBP, lr 0.01, standardised)",
    "default@no-plasticity": "default config without CBP",
    "fresh": "fresh network (last tasks)",
    "linear": "linear",
}


def base_method(method: str) -> str:
    """ "cbp@rho1e-3" -> "cbp": a variant is a method plus a tag naming its own overrides."""
    return method.split("@", 1)[0]


def label(method: str) -> str:
    if method in LABELS:
        return LABELS[method]
    base, _, tag = method.partition("@")
    return LABELS.get(base, base) + (f" [{tag}]" if tag else "")


def check_methods(methods: Sequence[str], known: Iterable[str]) -> list[str]:
    known = set(known)
    bad = [m for m in methods if base_method(m) not in known]
    if bad:
        raise SystemExit(f"unknown method(s) {bad}; known: {sorted(known)} (variants: name@tag)")
    return list(methods)


def split_overrides(items: Sequence[str]) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """--set values: "k=v" for every method, "m:k=v" for method (or variant) m only."""
    common: dict[str, Any] = {}
    per_method: dict[str, dict[str, Any]] = {}
    for item in items:
        scope, sep, rest = item.partition(":")
        if sep and "=" not in scope:
            per_method.setdefault(scope, {}).update(parse_overrides([rest]))
        else:
            common.update(parse_overrides([item]))
    return common, per_method


def add_learner_arguments(
    p: argparse.ArgumentParser, *, hidden: list[int], lr: float, out: Path
) -> None:
    """The arguments both benchmarks take: the base learner, --set overrides, processes, output
    (read back by `method_configs` and `finish_run`)."""
    p.add_argument("--hidden", type=int, nargs="+", default=hidden)
    p.add_argument("--optimizer", default="sgd")
    p.add_argument("--lr", type=float, default=lr)
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="[M:]K=V",
        help="LearnerConfig field override, for all methods or only method M\n"
        "(e.g. --set cbp:cbp_replacement_rate=1e-4 --set standardize=false)",
    )
    p.add_argument("--jobs", type=int, default=2, help="processes at once")
    p.add_argument("--out", type=Path, default=out)
    p.add_argument("--quiet", action="store_true")


def method_configs(
    a: argparse.Namespace, base: dict[str, Any], presets: dict[str, dict[str, Any]]
) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """The config every method starts from (`base` with the arguments' --hidden, --optimizer and
    --lr) and each method's own fields (`presets`), after the arguments' --set overrides."""
    common, overrides = split_overrides(a.overrides)
    base = {"hidden": tuple(a.hidden), "optimizer": a.optimizer, "lr": a.lr, **base, **common}
    per_method = {m: dict(v) for m, v in presets.items()}
    for m, v in overrides.items():
        per_method.setdefault(m, {}).update(v)
    return base, per_method


def parse_overrides(items: Sequence[str]) -> dict[str, Any]:
    """`key=value` pairs; values parsed as JSON when possible (numbers, lists, true/false)."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep:
            raise SystemExit(f"--set expects key=value, got {item!r}")
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        out[key.strip()] = tuple(value) if isinstance(value, list) else value
    return out


def api() -> Any:
    """The learner's public names (lifelong.model), or its modules while the package's
    __init__ does not export them yet."""
    try:
        from lifelong import model

        model.LearnerConfig  # noqa: B018
        return model
    except (ImportError, AttributeError):
        import types

        from lifelong.model import config, learner, telemetry

        return types.SimpleNamespace(
            LearnerConfig=config.LearnerConfig,
            LifelongClassifier=learner.LifelongClassifier,
            LifelongRegressor=learner.LifelongRegressor,
            telemetry=telemetry,
        )


def learner_config(method: str, base: dict[str, Any], per_method: dict[str, dict[str, Any]]):
    """A LearnerConfig for `method`: `base` (architecture, optimizer, lr, seed...) then the
    method's own overrides. For "default", only architecture and seed are taken from `base`."""
    LearnerConfig = api().LearnerConfig

    name = base_method(method)
    if name == "default":
        keep = {"hidden", "seed"}
        kwargs = {k: v for k, v in base.items() if k in keep}
    else:
        kwargs = dict(base)
        kwargs["plasticity"] = METHODS[name]
    kwargs.update(per_method.get(name, {}))
    if method != name:
        kwargs.update(per_method.get(method, {}))
    if "{seed}" in kwargs.get("guidance_file", ""):  # a guidance file per seed's stream
        kwargs["guidance_file"] = kwargs["guidance_file"].format(seed=base.get("seed", 0))
    return LearnerConfig(**kwargs)


def config_dict(cfg: Any) -> dict[str, Any]:
    import dataclasses

    if dataclasses.is_dataclass(cfg):
        return {f.name: _jsonable(getattr(cfg, f.name)) for f in dataclasses.fields(cfg)}
    return {"repr": repr(cfg)}


def _jsonable(v: Any) -> Any:
    if isinstance(v, tuple | list):
        return [_jsonable(x) for x in v]
    if isinstance(v, int | float | str | bool) or v is None:
        return v
    return repr(v)


# -- probing the network -----------------------------------------------------------------------


def hidden_activations(model: Any, X: np.ndarray) -> list[np.ndarray]:
    """Post-activation outputs of every hidden layer on the rows of X (no learning, no telemetry
    update). The design's public API has no such call; this reads the network directly."""
    import torch

    with torch.no_grad():
        hs = model._network.hidden_activations(_scaled(model, X).astype(np.float32))
    return [np.asarray(h) for h in hs]


def _scaled(model: Any, X: np.ndarray) -> np.ndarray:
    scaler = getattr(model, "_scaler", None)
    if scaler is None or not hasattr(scaler, "transform"):
        return X
    return scaler.transform(X)


def layer_weight_abs(model: Any) -> list[float]:
    """Mean |W| of every layer's incoming weights (hidden layers, then the output layer)."""
    return [float(s) for s in model._network.mean_abs_weights()]


def probe_stats(model: Any, X: np.ndarray, below: float = 0.01) -> dict[str, float]:
    """Batch statistics of every hidden layer on probe inputs X, by the telemetry module's
    reference functions, cross-checked against benchmarks/plasticity/metrics.py."""
    import metrics
    import torch

    telemetry = api().telemetry

    row: dict[str, float] = {}
    for i, H in enumerate(hidden_activations(model, X)):
        if not np.isfinite(H).all():  # a diverged network: no statistics
            for key in ("dead", "dormant", "tau_dormant", "erank", "erank_check", "dead_check"):
                row[f"{key}_{i}"] = float("nan")
            continue
        T = torch.from_numpy(H)
        row[f"dead_{i}"] = float(telemetry.dead_fraction(T))
        row[f"dormant_{i}"] = float(telemetry.dormant_fraction(T, below))
        row[f"tau_dormant_{i}"] = float(telemetry.tau_dormant_fraction(T))
        row[f"erank_{i}"] = float(telemetry.effective_rank(T))
        row[f"erank_check_{i}"] = metrics.effective_rank(H)
        row[f"dead_check_{i}"] = metrics.dead_fraction(H)
    try:
        for i, w in enumerate(layer_weight_abs(model)):
            row[f"w_{i}"] = w
    except AttributeError:
        pass
    return row


def finite(model: Any) -> bool:
    """All parameters finite (a run whose weights overflowed is over)."""
    W, b = model._network.weights()
    return all(np.isfinite(a).all() for a in (*W, *b))


def stream_stats(model: Any) -> dict[str, float]:
    """The learner's own streamed telemetry (PlasticityStats) flattened for a CSV row."""
    st = model.stats()
    row: dict[str, float] = {
        "s_gradient_norm": st.gradient_norm,
        "s_mean_abs_weight": st.mean_abs_weight,
        "s_prequential_score": st.prequential_score,
        "s_prequential_loss": st.prequential_loss,
        "s_drifts": st.drifts_detected,
    }
    # Since the learner stopped raising on a refused step (c61100c), refusals and the recoveries
    # they trigger are only in its stats (the runners' "refused" column counts exceptions).
    if hasattr(st, "updates_refused"):
        row["s_refused"] = sum(st.updates_refused.values())
        row["s_recoveries"] = sum(st.recoveries.values())
        row["s_step_scale"] = st.step_scale
    for i, layer in enumerate(st.layers):
        row[f"s_dead_{i}"] = layer.dead_fraction
        row[f"s_dormant_{i}"] = layer.dormant_fraction
        row[f"s_tau_dormant_{i}"] = layer.tau_dormant_fraction
        row[f"s_erank_{i}"] = layer.effective_rank
        row[f"s_w_{i}"] = layer.mean_abs_weight
        row[f"s_replaced_{i}"] = layer.units_replaced
    return row


# -- output ------------------------------------------------------------------------------------


class CsvLog:
    """Appends dict rows to a CSV, header from the first row, flushed every row (runs can be
    watched while they go)."""

    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._f = path.open("w", newline="")
        self._w: csv.DictWriter | None = None

    def write(self, row: dict[str, Any]) -> None:
        if self._w is None:
            self._w = csv.DictWriter(self._f, fieldnames=list(row), extrasaction="ignore")
            self._w.writeheader()
        self._w.writerow({k: _fmt(v) for k, v in row.items()})
        self._f.flush()

    def close(self) -> None:
        self._f.close()


def _fmt(v: Any) -> Any:
    if isinstance(v, float):
        return f"{v:.6g}"
    return v


def read_csv(path: Path) -> dict[str, np.ndarray]:
    with path.open() as f:
        rows = list(csv.DictReader(f))
    if not rows:
        return {}
    out = {}
    for key in rows[0]:
        try:
            out[key] = np.array([float(r[key]) if r[key] != "" else np.nan for r in rows])
        except ValueError:
            out[key] = np.array([r[key] for r in rows])
    return out


def write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def record_run(path: Path, header: dict[str, Any], runs: list[dict[str, Any]]) -> None:
    """Write run.json: this invocation's settings at the top level, every invocation in
    "invocations", and "runs" merged with those already there (a (method, seed) run again
    replaces the old entry), each run tagged with the learner it ran on."""
    env = header["environment"]
    for r in runs:
        r["learner"] = {k: v for k, v in env.items() if "learner" in k}
    old = json.loads(path.read_text()) if path.exists() else {}
    again = {(r["method"], r["seed"]) for r in runs}
    kept = [r for r in old.get("runs", []) if (r["method"], r["seed"]) not in again]
    first = {k: v for k, v in old.items() if k != "runs"}
    invocations = old.get("invocations", [first] if old else [])
    for r in kept:
        r.setdefault("learner", {k: old["environment"].get(k) for k in env if "learner" in k})
    invocations.append({k: v for k, v in header.items() if k != "runs"})
    write_json(path, {**header, "runs": kept + runs, "invocations": invocations})


def finish_run(
    a: argparse.Namespace,
    argv: list[str] | None,
    benchmark: str,
    settings: dict[str, Any],
    configs: tuple[dict[str, Any], dict[str, dict[str, Any]]],
    started: float,
    runs: list[dict[str, Any]],
) -> None:
    """`record_run` this invocation: its `settings`, seeds, methods and `configs` (from
    `method_configs`), started at `perf_counter()` `started`, then say where it went."""
    base, per_method = configs
    record_run(
        a.out / "run.json",
        {
            "benchmark": benchmark,
            "argv": sys.argv[1:] if argv is None else argv,
            **settings,
            "seeds": a.seeds,
            "methods": a.methods,
            "base": {k: list(v) if isinstance(v, tuple) else v for k, v in base.items()},
            "per_method": per_method,
            "wall_seconds": time.perf_counter() - started,
            "environment": environment(),
        },
        runs,
    )
    print(f"done in {time.perf_counter() - started:.0f}s -> {a.out}")


def environment() -> dict[str, Any]:
    import torch

    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=HERE, capture_output=True, text=True
        ).stdout.strip()
    except OSError:
        commit = ""
    import hashlib

    import lifelong.model

    where = Path(lifelong.model.__file__).parent
    src = sorted(p for p in where.rglob("*") if p.suffix in (".py", ".c") and p.is_file())
    digest = hashlib.sha256(b"".join(p.read_bytes() for p in src)).hexdigest()
    return {
        "commit": commit,
        # the learner as imported (a snapshot of a commit, or the working tree)
        "learner_path": str(where),
        "learner_sources_sha256": digest[:16],
        "python": platform.python_version(),
        "torch": torch.__version__,
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def run_parallel(fn: Callable[..., Any], jobs: Iterable[tuple], workers: int) -> list[Any]:
    """fn(*job) for every job, `workers` processes at once (1: in this process)."""
    jobs = list(jobs)
    if workers <= 1 or len(jobs) <= 1:
        one_thread()
        return [fn(*job) for job in jobs]
    with ProcessPoolExecutor(max_workers=workers, initializer=one_thread) as pool:
        return list(pool.map(_star, [(fn, job) for job in jobs]))


def _star(arg: tuple[Callable[..., Any], tuple]) -> Any:
    fn, job = arg
    return fn(*job)


def one_thread() -> None:
    """One thread for torch and for NumPy's BLAS: the learner is per-example work, and on a
    shared machine a multi-threaded SVD of a 1797 x 100 probe takes seconds instead of 30 ms."""
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(1)
    threadpool_limits(1)
