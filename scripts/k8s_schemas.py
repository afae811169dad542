#!/usr/bin/env python3
"""Writes standalone, strict JSON schemas for every Kubernetes kind in a swagger.json, named
the way kubeconform looks them up (`deployment-apps-v1.json`, `service-v1.json`).

Usage: k8s_schemas.py SWAGGER_JSON OUT_DIR
"""
import copy
import json
import os
import sys

INT_OR_STRING = {"oneOf": [{"type": "string"}, {"type": "integer"}]}
QUANTITY = {"oneOf": [{"type": "string"}, {"type": "number"}]}


def main(swagger_path, out_dir):
    with open(swagger_path, encoding="utf-8") as f:
        definitions = json.load(f)["definitions"]
    special = {
        "io.k8s.apimachinery.pkg.util.intstr.IntOrString": INT_OR_STRING,
        "io.k8s.apimachinery.pkg.api.resource.Quantity": QUANTITY,
    }

    def resolve(node, stack):
        if isinstance(node, list):
            return [resolve(n, stack) for n in node]
        if not isinstance(node, dict):
            return node
        if isinstance(node.get("$ref"), str):
            name = node["$ref"].rsplit("/", 1)[-1]
            if name in special:
                return copy.deepcopy(special[name])
            if name in stack or len(stack) > 40:
                return {}  # recursive types (JSONSchemaProps): accept anything below
            return resolve(definitions[name], stack | {name})
        out = {}
        for key, value in node.items():
            if key.startswith("x-kubernetes") or key == "format" and value == "int-or-string":
                continue
            out[key] = resolve(value, stack)
        if "properties" in out and out.get("type") == "object":
            out.setdefault("additionalProperties", False)
        return out

    os.makedirs(out_dir, exist_ok=True)
    written = 0
    for name, definition in definitions.items():
        for gvk in definition.get("x-kubernetes-group-version-kind", []):
            schema = resolve(definition, {name})
            schema["$schema"] = "http://json-schema.org/schema#"
            group = gvk["group"].split(".")[0].lower()
            suffix = f"-{group}-{gvk['version']}" if group else f"-{gvk['version']}"
            path = os.path.join(out_dir, f"{gvk['kind'].lower()}{suffix}.json")
            with open(path, "w", encoding="utf-8") as f:
                json.dump(schema, f)
            written += 1
    print(f"k8s_schemas: {written} schemas in {out_dir}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
