"""`lifelong <command> --help` shows every default (finding 7: the ports were only in the docs),
and never a secret."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest


def help_of(*command: str, **env: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "lifelong", *command, "--help"],
        capture_output=True, text=True, check=True, timeout=120,
        env={**os.environ, **env},
    )  # fmt: skip
    return " ".join(result.stdout.split())  # argparse wraps lines


@pytest.mark.parametrize("command", ["serve", "serve-predictions", "config"])
def test_settings_show_their_default_and_variable(command):
    text = help_of(command)
    assert '(default: "localhost:50051"; LIFELONG_GRPC_ADDRESS)' in text
    assert "(default: 9100; LIFELONG_METRICS_PORT)" in text
    assert "(default: 1000; LIFELONG_MAX_CLASSES)" in text
    assert "(default: none; LIFELONG_CHECKPOINT_DIR)" in text
    assert "(default: None)" not in text


def test_client_commands_show_defaults_but_not_the_token():
    text = help_of("predict", LIFELONG_TOKEN="s3cret-token")
    assert "server host:port (default: localhost:50051)" in text
    assert "seconds (default: 5.0)" in text
    assert "s3cret-token" not in text
