"""The `lifelong` command.

    lifelong serve [--config F] [--demo] [--grpc-address A] ...   run the service
    lifelong serve-predictions --snapshot-file F ...               a prediction replica
    lifelong predict --target host:port --features '{"x0": 0.2}'  ask a running server
    lifelong stats --target host:port                             its plasticity statistics
    lifelong config [--markdown]                                  effective settings (or docs)
    lifelong token --roles predict,learn                          a new bearer token, its hash
    lifelong admin pause|resume|checkpoint|checkpoints|rollback N|reset   operate a running server
    lifelong admin freeze|unfreeze NAME...                        a torch module's submodules
    lifelong produce --topic T --stream drifting --count 20000    feed a Kafka topic
    lifelong guide --data F.csv --target-column y --scouts 8 --output G   a guidance file

Heavy imports (torch, grpc) happen inside the subcommand that needs them, so `--help` is quick.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import version

# One BLAS thread, set before numpy loads (it cannot change after): a prediction batch is a few
# small matrix products, which OpenBLAS's thread pool makes several times slower on busy cores
# (benchmarks/speed). Calls run in parallel on gRPC workers instead.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from lifelong.config import (
    ENV_PREFIX,
    FIELDS,
    ConfigError,
    Settings,
    base_type,
    load_settings,
    shown_default,
)
from lifelong.ingest import produce


@dataclass(frozen=True)
class Subcommand:
    help: str
    arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]  # the exit status


class DefaultsFormatter(argparse.HelpFormatter):
    """Help that shows each option's default, as `ArgumentDefaultsHelpFormatter`, but not when
    there is none to show (None, False: a setting's flag, whose default is the setting's, shown
    in its help; a switch)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        help = action.help
        default = action.default
        if help is None or "%(default)" in help or default in (None, False, argparse.SUPPRESS):
            return help
        if action.option_strings or action.nargs in (argparse.OPTIONAL, argparse.ZERO_OR_MORE):
            return f"{help} (default: %(default)s)"
        return help


def settings_arguments(parser: argparse.ArgumentParser) -> None:
    """`--config` and one flag per setting (`--grpc-workers`, `--demo/--no-demo`, ...), each
    with its default and environment variable in its help."""
    parser.add_argument("--config", metavar="FILE", help="TOML settings file")
    flags = parser.add_argument_group("settings (override LIFELONG_* variables and the file)")
    defaults = Settings()
    for name, f in FIELDS.items():
        if f.metadata["secret"]:  # the environment or the file: a flag shows in `ps`
            continue
        flag = "--" + name.replace("_", "-")
        shown = shown_default(getattr(defaults, name))
        help = f"{f.metadata['help']} (default: {shown}; {ENV_PREFIX}{name.upper()})"
        help = help.replace("%", "%%")
        if base_type(name)[0] is bool:
            flags.add_argument(flag, action=argparse.BooleanOptionalAction, help=help)
        else:
            flags.add_argument(flag, metavar=name.split("_")[-1].upper(), help=help)


def settings_from(args: argparse.Namespace) -> Settings:
    return load_settings(
        flags={name: getattr(args, name, None) for name in FIELDS}, config_file=args.config
    )


def serve(args: argparse.Namespace) -> int:
    from lifelong.app import App
    from lifelong.process import configure_logging

    settings = settings_from(args)
    configure_logging(settings)
    return App(settings).run()


def serve_predictions(args: argparse.Namespace) -> int:
    from lifelong.process import configure_logging
    from lifelong.replica import Replica

    settings = settings_from(args)
    configure_logging(settings)
    return Replica(settings).run()


def config(args: argparse.Namespace) -> int:
    if args.markdown:
        from lifelong.config import markdown

        print(markdown(), end="")
    else:
        from lifelong.config import to_toml

        print(to_toml(settings_from(args)), end="")
    return 0


def config_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--markdown", action="store_true", help="print docs/configuration.md instead"
    )
    settings_arguments(parser)


def client_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--target", default="localhost:50051", help="server host:port")
    parser.add_argument("--timeout", type=float, default=5.0, help="seconds")
    tls = parser.add_argument_group("TLS (any of these: connect over TLS)")
    tls.add_argument("--tls", action="store_true", help="TLS, the system's CAs trusted")
    tls.add_argument("--ca-file", metavar="PEM", help="CA that signed the server's certificate")
    tls.add_argument("--cert-file", metavar="PEM", help="client certificate, for mutual TLS")
    tls.add_argument("--key-file", metavar="PEM", help="its private key")
    parser.add_argument(
        "--token",
        help="bearer token sent as 'authorization: Bearer ...' (default: $LIFELONG_TOKEN; a "
        "flag shows in the process list, the variable does not)",
    )


def predict_arguments(parser: argparse.ArgumentParser) -> None:
    client_arguments(parser)
    parser.add_argument(
        "--features",
        required=True,
        help='JSON: named features {"x0": 0.2} or a dense list [0.2, 0.7]',
    )


def predict(args: argparse.Namespace) -> int:
    try:
        features = json.loads(args.features)
    except json.JSONDecodeError as e:
        raise ConfigError(f"--features is not JSON: {e}") from None
    return _ask(args, lambda client: client.predict(features))


def stats(args: argparse.Namespace) -> int:
    return _ask(args, lambda client: client.stats())


def _ask(args: argparse.Namespace, call: Callable) -> int:
    """Print `call(client)`'s answer as JSON, or the server's reason for failing."""
    from lifelong.client import LifelongClient, LifelongError, tls_credentials

    credentials = None
    if args.tls or args.ca_file or args.cert_file or args.key_file:
        try:
            credentials = tls_credentials(
                ca_file=args.ca_file, cert_file=args.cert_file, key_file=args.key_file
            )
        except ValueError as e:  # --cert-file without --key-file
            raise ConfigError(str(e)) from None
    try:
        token = args.token or os.environ.get("LIFELONG_TOKEN")  # never a parser default: --help
        with LifelongClient(
            args.target, timeout=args.timeout, credentials=credentials, token=token
        ) as client:
            answer = call(client)
    except LifelongError as e:
        print(f"lifelong {args.command}: {e}", file=sys.stderr)
        return 1
    if isinstance(answer, list):
        print(json.dumps([dataclasses.asdict(a) for a in answer], indent=2, default=str))
    else:
        print(json.dumps(dataclasses.asdict(answer), indent=2, default=str))
    return 0


# The operator's verbs: `lifelong admin VERB [ARG...]`, each one AdminService call.
ADMIN_VERBS: dict[str, Callable] = {
    "checkpoint": lambda client, args: client.checkpoint(),
    "checkpoints": lambda client, args: client.list_checkpoints(),
    "pause": lambda client, args: client.pause_learning(),
    "resume": lambda client, args: client.resume_learning(),
    "rollback": lambda client, args: client.roll_back(args.sequence),
    "reset": lambda client, args: client.reset_model(),
    "freeze": lambda client, args: client.freeze_submodules(args.arguments),
    "unfreeze": lambda client, args: client.unfreeze_submodules(args.arguments),
}


def admin_arguments(parser: argparse.ArgumentParser) -> None:
    client_arguments(parser)
    parser.add_argument(
        "verb",
        choices=ADMIN_VERBS,
        help="checkpoint (now), checkpoints (list), pause or resume learning, rollback SEQUENCE "
        "(to a listed checkpoint), reset (to a fresh model), freeze NAME... or unfreeze NAME... "
        "(a torch module's submodules, e.g. backbone)",
    )
    parser.add_argument(
        "arguments", nargs="*", metavar="ARG", help="rollback: the checkpoint's sequence; "
        "freeze, unfreeze: submodule names",
    )  # fmt: skip


def admin(args: argparse.Namespace) -> int:
    if args.verb == "rollback":
        if len(args.arguments) != 1 or not args.arguments[0].isdigit():
            raise ConfigError(
                "rollback needs the checkpoint's sequence (lifelong admin checkpoints)"
            )
        args.sequence = int(args.arguments[0])
    elif args.verb in ("freeze", "unfreeze"):
        if not args.arguments:
            raise ConfigError(f"{args.verb} needs the submodules' names, e.g. backbone")
    elif args.arguments:
        raise ConfigError(f"{args.verb} takes no arguments, got {' '.join(args.arguments)}")
    return _ask(args, lambda client: ADMIN_VERBS[args.verb](client, args))


def token_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--roles", required=True, help="comma-separated, among predict, learn, admin"
    )
    parser.add_argument(
        "--stdin",
        action="store_true",
        help="hash the token read from standard input instead of making one; print only the line",
    )


def token(args: argparse.Namespace) -> int:
    """A new token (or one from stdin) and its `auth_tokens_file` line."""
    from lifelong.auth import TokenFileError, TokenTable, new_token, token_hash

    secret = sys.stdin.read().strip() if args.stdin else new_token()
    line = f"{args.roles} {token_hash(secret)}"
    try:
        TokenTable.parse(line, "--roles")
    except TokenFileError as e:
        raise ConfigError(str(e)) from None
    if not args.stdin:
        print(f"# the token, for clients (LIFELONG_TOKEN, --token):\n{secret}")
        print("# the line for auth_tokens_file (or auth_tokens), on the server:")
    print(line)
    return 0


def guide_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data", required=True, metavar="CSV", help="bootstrap samples: a CSV file with a header"
    )
    parser.add_argument("--target-column", required=True, help="the CSV column holding the label")
    parser.add_argument("--output", required=True, metavar="FILE", help="guidance file to write")
    parser.add_argument("--scouts", type=int, default=8, help="short trainings")
    parser.add_argument(
        "--fraction", type=float, default=0.1, help="of the samples each scout learns"
    )
    parser.add_argument("--count", type=int, help="samples to read (default: all)")
    parser.add_argument(
        "--seed", type=int, default=0, help="seeds the scouts' subsets (default: 0)"
    )
    parser.add_argument(
        "--config", metavar="FILE", help="TOML settings file, for its `task` and `learner`"
    )
    parser.add_argument(
        "--task", choices=("classification", "regression"), help="default: the settings' task"
    )
    parser.add_argument("--learner", metavar="JSON", help='learner overrides: {"hidden": [64]}')


def guide(args: argparse.Namespace) -> int:
    """`lifelong guide`: Guided Transfer Learning's scouts on a bootstrap file, their guidance
    written as a safetensors file for the learner's `guidance_file` (plasticity "guided")."""
    from pathlib import Path

    from lifelong.model import guidance
    from lifelong.model.scouts import scout_guidance

    settings = load_settings(
        flags={"task": args.task, "learner": args.learner}, config_file=args.config
    )
    samples = produce.samples_from_csv(Path(args.data), target=args.target_column, count=args.count)
    try:
        result = scout_guidance(
            samples,
            settings.learner_config(),
            settings.task,
            scouts=args.scouts,
            fraction=args.fraction,
            seed=args.seed,
        )
    except ValueError as e:
        raise ConfigError(str(e)) from None
    guidance.save(
        args.output,
        result.tensors,
        task=settings.task,
        features=result.features,
        classes=result.classes,
    )
    print(
        f"{args.output}: guidance of {args.scouts} scouts from {result.rows} samples "
        f"(each learned {min(result.learned)}-{max(result.learned)}); "
        f"{len(result.features)} features, {len(result.classes)} classes"
    )
    return 0


# Every subcommand of `lifelong`; add one with an entry here.
SUBCOMMANDS: dict[str, Subcommand] = {
    "serve": Subcommand("run the service", settings_arguments, serve),
    "serve-predictions": Subcommand(
        "serve predictions from the snapshot file a `serve` process writes (a replica)",
        settings_arguments,
        serve_predictions,
    ),
    "predict": Subcommand("ask a running server for a prediction", predict_arguments, predict),
    "stats": Subcommand("a running server's plasticity statistics", client_arguments, stats),
    "config": Subcommand("print the effective settings as TOML", config_arguments, config),
    "admin": Subcommand(
        "operate a running server: checkpoints, pause/resume, rollback, reset, freeze/unfreeze",
        admin_arguments,
        admin,
    ),
    "token": Subcommand(
        "make a bearer token and the line that grants it roles", token_arguments, token
    ),
    "produce": Subcommand(
        "feed a synthetic stream or a CSV file into a Kafka topic",
        produce.arguments,
        produce.command,
    ),
    "guide": Subcommand(
        'a guidance file for plasticity "guided": scouts trained on a bootstrap CSV file',
        guide_arguments,
        guide,
    ),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lifelong",
        description="Serve predictions from a neural network that never stops learning.",
    )
    parser.add_argument("--version", action="version", version=f"lifelong {version('lifelong')}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, command in SUBCOMMANDS.items():
        command.arguments(
            commands.add_parser(
                name, help=command.help, description=command.help, formatter_class=DefaultsFormatter
            )
        )
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    try:
        status = SUBCOMMANDS[args.command].run(args)
    except (ConfigError, OSError) as e:  # a bad setting, a port in use, ...
        sys.exit(f"lifelong {args.command}: {e}")
    sys.exit(status)


if __name__ == "__main__":
    main()
