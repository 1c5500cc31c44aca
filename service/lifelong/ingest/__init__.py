"""Kafka ingestion: records to samples (`codecs`), invalid ones to the dead-letter topic
(`deadletter`), the learn loop (`consumer.run`), `lifelong produce` (`produce`), and the
security settings every client of theirs uses (`security`)."""

from typing import Any

__all__ = ["run"]


def __getattr__(name: str) -> Any:
    # `ingest.run` is imported on first use: `lifelong produce` and `--help` need no consumer.
    if name == "run":
        from lifelong.ingest.consumer import run

        return run
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
