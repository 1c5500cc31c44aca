"""Kubernetes OpenAPI (swagger 2.0) or CRD JSON -> standalone, strict JSON schemas for kubeconform.

    python openapi2jsonschema.py swagger.json OUT_DIR          # every built-in kind
    python openapi2jsonschema.py --crd servicemonitors-crd.json OUT_DIR

Files are named as kubeconform's `{{ .ResourceKind }}{{ .KindSuffix }}.json` template expects
(`statefulset-apps-v1.json`, `service-v1.json`, `servicemonitor-monitoring-v1.json`). Like
kubeconform's own schemas (yannh/kubernetes-json-schema, "-standalone-strict"): every `$ref` is
inlined, objects with `properties` reject unknown fields (`additionalProperties: false`: a typo
such as `readinessProbes` fails), int-or-string fields take both, quantities take strings and
numbers. Standard library only.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
from pathlib import Path

INT_OR_STRING = {"oneOf": [{"type": "string"}, {"type": "integer"}]}
QUANTITY = {"oneOf": [{"type": "string"}, {"type": "number"}]}
QUANTITY_DEF = "io.k8s.apimachinery.pkg.api.resource.Quantity"


def file_name(group: str, version: str, kind: str) -> str:
    """kubeconform's `{{ .ResourceKind }}{{ .KindSuffix }}.json` for one group/version/kind."""
    suffix = f"-{group.split('.')[0].lower()}-{version.lower()}" if group else f"-{version.lower()}"
    return f"{kind.lower()}{suffix}.json"


def strict(schema):
    """Reject unknown fields wherever fields are listed; int-or-string takes both."""
    if isinstance(schema, list):
        return [strict(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    if schema.get("format") == "int-or-string" or schema.get("x-kubernetes-int-or-string"):
        rest = {k: v for k, v in schema.items() if k in ("description",)}
        return {**rest, **INT_OR_STRING}
    out = {k: strict(v) for k, v in schema.items()}
    open_object = "additionalProperties" in out or out.get("x-kubernetes-preserve-unknown-fields")
    if "properties" in out and not open_object:
        out["additionalProperties"] = False
    return out


class Inliner:
    """Inlines `#/definitions/...` references; a reference cycle becomes `{}` (anything)."""

    def __init__(self, definitions: dict) -> None:
        self.definitions = definitions
        self.cycles = 0

    def inline(self, schema, stack: tuple[str, ...] = ()):
        if isinstance(schema, list):
            return [self.inline(s, stack) for s in schema]
        if not isinstance(schema, dict):
            return schema
        ref = schema.get("$ref")
        if isinstance(ref, str):  # (JSONSchemaProps has a *field* named "$ref")
            name = ref.rsplit("/", 1)[-1]
            if name == QUANTITY_DEF:
                return dict(QUANTITY)
            if name in stack:
                self.cycles += 1
                return {}
            return self.inline(copy.deepcopy(self.definitions[name]), (*stack, name))
        return {k: self.inline(v, stack) for k, v in schema.items()}


def from_swagger(swagger: dict, out: Path) -> int:
    definitions = swagger["definitions"]
    inliner = Inliner(definitions)
    written = 0
    for name, definition in definitions.items():
        for gvk in definition.get("x-kubernetes-group-version-kind", []):
            schema = strict(inliner.inline(copy.deepcopy(definition), (name,)))
            props = schema.get("properties", {})
            api_version = f"{gvk['group']}/{gvk['version']}" if gvk["group"] else gvk["version"]
            if "apiVersion" in props and "kind" in props:
                props["apiVersion"] = {**props["apiVersion"], "enum": [api_version]}
                props["kind"] = {**props["kind"], "enum": [gvk["kind"]]}
            schema["$schema"] = "http://json-schema.org/draft-07/schema#"
            path = out / file_name(gvk["group"], gvk["version"], gvk["kind"])
            path.write_text(json.dumps(schema, separators=(",", ":")))
            written += 1
    return written


def from_crd(crd: dict, out: Path) -> int:
    spec = crd["spec"]
    written = 0
    for version in spec["versions"]:
        schema = strict(copy.deepcopy(version["schema"]["openAPIV3Schema"]))
        props = schema.setdefault("properties", {})
        props["apiVersion"] = {"type": "string", "enum": [f"{spec['group']}/{version['name']}"]}
        props["kind"] = {"type": "string", "enum": [spec["names"]["kind"]]}
        # The CRD leaves metadata open; the API server checks it as ObjectMeta.
        props["metadata"] = {"type": "object"}
        schema["$schema"] = "http://json-schema.org/draft-07/schema#"
        path = out / file_name(spec["group"], version["name"], spec["names"]["kind"])
        path.write_text(json.dumps(schema, separators=(",", ":")))
        written += 1
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--crd", action="store_true", help="the input is a CRD (as JSON)")
    parser.add_argument("source", type=Path)
    parser.add_argument("out", type=Path)
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    document = json.loads(args.source.read_text())
    written = from_crd(document, args.out) if args.crd else from_swagger(document, args.out)
    print(f"{written} schemas written to {args.out}", file=sys.stderr)
    return 0 if written else 1


if __name__ == "__main__":
    sys.exit(main())
