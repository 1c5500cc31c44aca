"""Ask a running Lifelong server for a prediction.

    python clients/python/examples/predict.py localhost:50051 x1=0.3 x2=-1.0   # named features
    python clients/python/examples/predict.py localhost:50051 0.3 -1.0         # dense, in order

With no features, predicts for all-zero dense features (one per ``feature_names``).
"""

from __future__ import annotations

import argparse
import sys

from lifelong.client import LifelongClient, LifelongError, NotReadyError, UnavailableError


def parse_features(args: list[str]) -> dict[str, float] | list[float]:
    """``name=value`` arguments as named features, bare numbers as dense ones."""
    if all("=" in arg for arg in args):
        return {name: float(value) for name, value in (arg.split("=", 1) for arg in args)}
    return [float(arg) for arg in args]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("target", help="server address, host:port")
    parser.add_argument("features", nargs="*", help="name=value ... or value ...")
    parser.add_argument("--timeout", type=float, default=2.0, help="seconds per call")
    args = parser.parse_args()
    try:
        given = parse_features(args.features)
    except ValueError:
        parser.error("give features as name=value ... or as numbers ..., not a mix")

    with LifelongClient(args.target, timeout=args.timeout, retries=2) as client:
        try:
            info = client.model_info()
            print(f"{info.task} model, version {info.model_version}, features {info.feature_names}")
            features = given or [0.0] * len(info.feature_names)
            prediction = client.predict(features)
        except NotReadyError as err:
            print(f"not ready yet: {err.details}", file=sys.stderr)
            return 2
        except UnavailableError as err:
            print(f"cannot reach {args.target}: {err.details}", file=sys.stderr)
            return 3
        except LifelongError as err:  # e.g. InvalidArgumentError: the details say what to fix
            print(err, file=sys.stderr)
            return 1

    print(f"label: {prediction.label!r} (model version {prediction.model_version})")
    for label, probability in prediction.probabilities.items():
        print(f"  {label!r}: {probability:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
