"""Property-based tests of the settings loader (`lifelong.config.load_settings`) on arbitrary
strings in the environment, flags and TOML files: it gives `Settings` that pass their own checks
(and a learner configuration, `learner_config()`), or raises `ConfigError` naming what is wrong;
nothing else escapes, so `lifelong serve` says what to fix instead of showing a traceback.
"""

from __future__ import annotations

import datetime
import json
import math
import os
import tempfile
from pathlib import Path

from hypothesis import example, given
from hypothesis import strategies as st
from lifelong.config import ENV_PREFIX, FIELDS, ConfigError, Settings, load_settings

setting_names = st.one_of(st.sampled_from(sorted(FIELDS)), st.sampled_from(["nope", "Task", ""]))
texts = st.one_of(
    st.sampled_from(
        [
            "", " ", "none", "null", "true", "off", "yes", "0", "1", "-1", "1e999", "nan", "-inf",
            "1_000", "0x10", "٣", "9" * 5000, "{}", "[]", '{"hidden": [8]}', '{"hidden": "8"}',
            '{"hidden": [1e400]}', '{"lr": -1}', '{"nope": 1}', '{"seed": 1e300}',
            '{"hidden": [[8]]}', '{"plasticity": [1]}', '{"optimizer": {}}', "[" * 100_000,
            '{"a":' * 100_000, "classification", "regression", "json", "protobuf", "DEBUG",
            "localhost:0", "\x00", "/nonexistent/dir", ".",
        ]
    ),
    st.text(max_size=20),
    st.builds(json.dumps, st.dictionaries(st.text(max_size=12), st.integers() | st.floats())),
)  # fmt: skip


def check(load) -> None:
    """`load()` gives usable settings or raises ConfigError; nothing else."""
    try:
        settings = load()
        assert isinstance(settings, Settings)
        settings.learner_config()  # checked at start: part of what the loader accepts
    except ConfigError as e:
        assert str(e)


@given(environ=st.dictionaries(setting_names, texts, max_size=4))
@example(environ={"learner": "[" * 100_000})
@example(environ={"learner": '{"hidden": [1e400]}'})
@example(environ={"config": "\x00"})
def test_environment_variables(environ):
    environ = {ENV_PREFIX + name.upper(): text for name, text in environ.items()}
    check(lambda: load_settings(environ=environ))


@given(flags=st.dictionaries(setting_names, texts, max_size=4))
def test_flags(flags):
    check(lambda: load_settings(flags=flags, environ={}))


# TOML values of every type, for any setting.
toml_scalars = st.one_of(
    st.booleans(),
    st.integers(-(2**63), 2**63 - 1),
    st.floats(),
    st.text(max_size=10),
    st.sampled_from([*FIELDS, "classification", "json"]),
    st.datetimes(),
    st.dates(),
)
toml_values = st.recursive(
    toml_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=6,
)


def toml(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return (
            "nan"
            if math.isnan(value)
            else ("inf" if value > 0 else "-inf")
            if math.isinf(value)
            else repr(value)
        )
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value)  # a TOML basic string, but for JSON's \ud800 escapes
    if isinstance(value, datetime.date):
        return value.isoformat()
    if isinstance(value, list):
        return "[" + ", ".join(map(toml, value)) + "]"
    return "{" + ", ".join(f"{json.dumps(k)} = {toml(v)}" for k, v in value.items()) + "}"


@given(
    table=st.dictionaries(setting_names, toml_values, max_size=5),
    raw=st.one_of(st.none(), st.text(max_size=60), st.binary(max_size=40)),
    environ=st.dictionaries(setting_names, texts, max_size=2),
)
@example(table={"learner": {"hidden": [0]}}, raw=None, environ={})
@example(table={"refresh_every_seconds": math.nan}, raw=None, environ={})
@example(table={}, raw=b"\x80", environ={})  # not UTF-8
@example(table={}, raw="learner = " + "[" * 100_000, environ={})
def test_config_files(table, raw, environ):
    if raw is None:
        content = "\n".join(f"{json.dumps(k)} = {toml(v)}" for k, v in table.items()).encode()
    else:
        content = raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else raw
    environ = {ENV_PREFIX + name.upper(): text for name, text in environ.items()}
    fd, path = tempfile.mkstemp(suffix=".toml")
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(content)
        check(lambda: load_settings(environ=environ, config_file=Path(path)))
    finally:
        os.unlink(path)
