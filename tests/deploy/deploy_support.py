"""Shared helpers of the deployment tests: paths, the validators, the dashboard's queries, PromQL
sub-expressions."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
DOCKERFILE = ROOT / "Dockerfile"
COMPOSE_FILE = DEPLOY / "compose" / "compose.yaml"
PROMETHEUS_DIR = DEPLOY / "prometheus"
ALERTS = PROMETHEUS_DIR / "alerts.yml"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "lifelong.json"
K8S = DEPLOY / "k8s"
FETCH = Path(__file__).resolve().parent / "tools" / "fetch.sh"
POLICY = Path(__file__).resolve().parent / "k8s_policy"
CACHE = Path(os.environ.get("LIFELONG_CACHE", ROOT / ".cache"))
KUBERNETES_VERSION = "v1.32.4"  # as tools/fetch.sh
K8S_SCHEMAS = CACHE / "k8s-schemas" / KUBERNETES_VERSION
K8S_SCHEMAS_STAMP = K8S_SCHEMAS / ".recipe-2"  # as SCHEMAS_RECIPE in tools/fetch.sh

# Missing validators skip their tests with the reason, unless this is set (CI): then they fail.
REQUIRE_TOOLS = os.environ.get("LIFELONG_REQUIRE_DEPLOY_TOOLS", "") not in ("", "0")
# Set to 0 to never fetch or build validators from a test.
FETCH_ALLOWED = os.environ.get("LIFELONG_DEPLOY_FETCH", "1") != "0"


def missing(reason: str):
    """Skip (or, with LIFELONG_REQUIRE_DEPLOY_TOOLS=1, fail) for a missing validator."""
    if REQUIRE_TOOLS:
        pytest.fail(f"{reason} (LIFELONG_REQUIRE_DEPLOY_TOOLS is set)")
    pytest.skip(reason)


def run(*args: str | Path, **kwargs) -> subprocess.CompletedProcess[str]:
    kwargs.setdefault("timeout", 300)
    return subprocess.run(
        [str(a) for a in args], capture_output=True, text=True, check=False, **kwargs
    )


_fetch_failures: dict[str, str] = {}


def fetched(tool: str, path: Path) -> Path:
    """`path` of a validator that tools/fetch.sh makes; fetched on first use."""
    if path.exists():
        return path
    if tool in _fetch_failures:
        missing(_fetch_failures[tool])
    if not FETCH_ALLOWED:
        missing(f"{tool} not in {CACHE} and LIFELONG_DEPLOY_FETCH=0: run {FETCH} {tool}")
    if tool != "hadolint" and shutil.which("go") is None:
        missing(f"{tool} is built with Go, which is not installed: run {FETCH} {tool}")
    result = run(FETCH, tool, timeout=1800, env={**os.environ, "LIFELONG_CACHE": str(CACHE)})
    if result.returncode != 0 or not path.exists():
        _fetch_failures[tool] = (
            f"could not fetch {tool} with {FETCH}: {result.stderr.strip()[-2000:]}"
        )
        missing(_fetch_failures[tool])
    return path


def binary(name: str, fetch_as: str | None = None) -> Path:
    """A validator binary: on PATH, in $LIFELONG_CACHE/bin, or fetched with tools/fetch.sh."""
    cached = CACHE / "bin" / name
    if cached.exists():
        return cached
    found = shutil.which(name)
    if found:
        return Path(found)
    return fetched(fetch_as or name, cached)


# -- the dashboard ------------------------------------------------------------------------------

# What the test Prometheus substitutes for Grafana's variables: "All" (the variables' allValue)
# and intervals long enough for rate() at its 1 s scrape interval.
GRAFANA_VARIABLES = {
    "$__rate_interval": "15s",
    "$__interval": "5s",
    "$__range": "60s",
    "${datasource}": "prometheus",
    "$datasource": "prometheus",
    "$job": ".+",
    "$instance": ".+",
    "$layer": ".+",
}


def substitute(expr: str) -> str:
    """`expr` with Grafana's variables replaced as the test Prometheus needs."""
    for name in sorted(GRAFANA_VARIABLES, key=len, reverse=True):
        expr = expr.replace(name, GRAFANA_VARIABLES[name])
    leftover = re.findall(r"\$\{?\w+", expr)
    assert not leftover, f"unknown Grafana variable(s) {leftover} in {expr!r}"
    return expr


@dataclass(frozen=True)
class Query:
    where: str  # "panel 'Dormant units' A", "annotation 'Drift detected'", ...
    expr: str


def load_dashboard() -> dict:
    return json.loads(DASHBOARD.read_text())


def panels(dashboard: dict) -> list[dict]:
    """Every panel, rows' nested panels included, rows themselves excluded."""
    out = []
    for panel in dashboard["panels"]:
        if panel["type"] == "row":
            out += panel.get("panels", [])
        else:
            out.append(panel)
    return out


def dashboard_queries(dashboard: dict) -> list[Query]:
    """Every PromQL expression of the dashboard's panels and annotations."""
    queries = []
    for panel in panels(dashboard):
        for target in panel.get("targets", []):
            queries.append(Query(f"panel {panel['title']!r} {target['refId']}", target["expr"]))
    for annotation in dashboard["annotations"]["list"]:
        if annotation.get("expr"):
            queries.append(Query(f"annotation {annotation['name']!r}", annotation["expr"]))
    return queries


def variable_queries(dashboard: dict) -> list[tuple[str, str, str]]:
    """(variable, label, series selector) of every `label_values(selector, label)` variable."""
    out = []
    for variable in dashboard["templating"]["list"]:
        if variable["type"] != "query":
            continue
        query = variable["query"]
        text = query["query"] if isinstance(query, dict) else query
        m = re.fullmatch(r"label_values\((.+),\s*(\w+)\)", text.strip())
        assert m, f"variable {variable['name']}: not a label_values() query: {text!r}"
        out.append((variable["name"], m.group(2), m.group(1)))
    return out


# -- PromQL sub-expressions ---------------------------------------------------------------------

FILTER_WORDS = ("and", "or", "unless")
MODIFIER = re.compile(
    r"^\s*(bool\b\s*)?((on|ignoring)\s*\([^)]*\)\s*)?((group_left|group_right)\s*(\([^)]*\))?\s*)?"
)
NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$|^[+-]?(Inf|NaN)$", re.I)
LABEL_LIST = re.compile(r"(\bby|\bwithout|\bon|\bignoring|\bgroup_left|\bgroup_right)\s*$")


def _scan(expr: str):
    """(index, depth, char) for every character outside strings, {...} matchers and [...]
    ranges; depth counts open parentheses."""
    depth, i, n = 0, 0, len(expr)
    while i < n:
        c = expr[i]
        if c in "\"'`":
            j = i + 1
            while j < n and expr[j] != c:
                j += 2 if expr[j] == "\\" else 1
            i = j + 1
            continue
        if c in "{[":
            i = expr.index("}" if c == "{" else "]", i) + 1
            continue
        if c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
        yield i, depth, c
        i += 1


def _split_filters(expr: str) -> list[str]:
    """Operands of the comparison and set operators at parenthesis depth 0."""
    cuts: list[tuple[int, int]] = []
    for i, depth, c in _scan(expr):
        if depth != 0 or (cuts and i < cuts[-1][1]):
            continue
        two = expr[i : i + 2]
        if two in ("==", "!=", ">=", "<="):
            cuts.append((i, i + 2))
        elif c in "<>":
            cuts.append((i, i + 1))
        elif c.isalpha() and (i == 0 or not (expr[i - 1].isalnum() or expr[i - 1] in "_:")):
            for word in FILTER_WORDS:
                end = i + len(word)
                if expr[i:end] == word and not (
                    end < len(expr) and (expr[end].isalnum() or expr[end] in "_:")
                ):
                    cuts.append((i, end))
                    break
    parts, start = [], 0
    for begin, end in cuts:
        parts.append(expr[start:begin])
        start = end
    parts.append(expr[start:])
    return [MODIFIER.sub("", p, count=1).strip() for p in parts]


def _has_filter(expr: str) -> bool:
    for i, _depth, c in _scan(expr):
        if expr[i : i + 2] in ("==", "!=", ">=", "<=") or c in "<>":
            return True
    return any(re.search(rf"\b{w}\b", _outside_literals(expr)) for w in FILTER_WORDS)


def _outside_literals(expr: str) -> str:
    return "".join(c for _i, _d, c in _scan(expr))


def _groups(expr: str) -> list[str]:
    """Contents of the parenthesised groups at depth 1, label lists (by, on, ...) excluded,
    each split into its comma-separated arguments."""
    out, start, args = [], None, []
    for i, depth, c in _scan(expr):
        if c == "(" and depth == 1:
            start = i + 1
            is_labels = bool(LABEL_LIST.search(expr[:i]))
            args = []
        elif start is not None and c == "," and depth == 1:
            args.append(expr[start:i])
            start = i + 1
        elif c == ")" and depth == 0 and start is not None:
            args.append(expr[start:i])
            if not is_labels:
                out += [a.strip() for a in args]
            start = None
    return out


def pure_subexpressions(expr: str) -> list[str]:
    """The largest sub-expressions of `expr` free of comparisons and set operators: what must
    return data for the expression to mean anything (`x > 0.5` -> `x`). Numbers and strings are
    left out."""
    expr = expr.strip()
    if not expr or NUMBER.match(expr) or expr[0] in "\"'`":
        return []
    if not _has_filter(expr):
        return [expr]
    parts = _split_filters(expr)
    if len(parts) > 1:
        return [sub for part in parts for sub in pure_subexpressions(part)]
    return [sub for group in _groups(expr) for sub in pure_subexpressions(group)]


def metric_names(expr: str) -> set[str]:
    """Metric names in the selectors of `expr` (lifelong_* and up)."""
    text = _outside_literals(expr)
    return set(re.findall(r"\b(lifelong_[a-z_]+|up)\b(?!\s*\()", text))


def without_offsets(expr: str) -> str:
    """`expr` without `offset <duration>` modifiers (a minutes-old Prometheus has no data an hour
    back; the metric names and functions stay the same)."""
    return re.sub(r"\s+offset\s+-?\d+[smhdwy]", "", expr)


def alert_rules_from_text(text: str) -> dict[str, str]:
    """{alert name: expr} from alerts.yml, read without a YAML library: `expr:` is either on one
    line or a `|` block (what alerts.yml uses; anything else fails the count check)."""
    lines = text.splitlines()
    rules: dict[str, str] = {}
    name = None
    for i, line in enumerate(lines):
        m = re.match(r"\s*- alert:\s*(\S+)", line)
        if m:
            name = m.group(1)
            continue
        m = re.match(r"(\s*)expr:\s*(.*)$", line)
        if m and name:
            indent, rest = len(m.group(1)), m.group(2).strip()
            if rest not in ("|", "|-", ">", ">-"):
                rules[name] = rest
            else:
                block = []
                for following in lines[i + 1 :]:
                    if following.strip() and len(following) - len(following.lstrip()) <= indent:
                        break
                    block.append(following.strip())
                rules[name] = "\n".join(block).strip()
            name = None
    assert len(rules) == len(re.findall(r"^\s*- alert:", text, re.M)), "unparsed alert rules"
    return rules
