"""Chart metadata, values documentation and the values schema."""

import json
import re
import tomllib

import jsonschema
import pytest
import yaml

from helmrender import CHART, ROOT

SCHEMA = json.loads((CHART / "values.schema.json").read_text())
VALUES_TEXT = (CHART / "values.yaml").read_text()
VALUES = yaml.safe_load(VALUES_TEXT)


def test_app_version_is_the_crate_version():
    crate = tomllib.loads((ROOT / "Cargo.toml").read_text())["package"]["version"]
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["appVersion"] == crate
    assert chart["apiVersion"] == "v2" and chart["name"] == "certweave"
    assert re.fullmatch(r"\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?", chart["version"])


def test_dockerfile_version_label_is_the_crate_version():
    crate = tomllib.loads((ROOT / "Cargo.toml").read_text())["package"]["version"]
    assert f"ARG VERSION={crate}\n" in (ROOT / "Dockerfile").read_text()


def test_schema_is_valid_and_accepts_the_defaults_and_ci_values():
    jsonschema.Draft7Validator.check_schema(SCHEMA)
    jsonschema.validate(VALUES, SCHEMA)
    for path in sorted((CHART / "ci").glob("*.yaml")):
        jsonschema.validate(yaml.safe_load(path.read_text()) or {}, SCHEMA)


@pytest.mark.parametrize(
    "patch",
    [
        {"replicaCount": 0},
        {"webhook": {"timeoutSeconds": 0}},
        {"webhook": {"pod": {"failurePolicy": "Sometimes"}}},
        {"imagee": {}},
        {"issuers": {"letsencrypt": {"production": {"enabled": True}}}},
        {"issuers": {"letsencrypt": {"email": "not-an-address"}}},
        {"image": {"digest": "sha256:abc"}},
        {"logFormat": "yaml"},
        {"watchNamespaces": ["Bad_NS"]},
        {"watchNamespaces": ["team-a", "team-a"]},
        {"watchNamespaces": ["a" * 64]},
        {"watchNamespaces": [f"ns-{i}" for i in range(65)]},
        {"watchNamespaces": "team-a,team-b"},
    ],
)
def test_schema_refuses(patch):
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(patch, SCHEMA)


def _paths(values, schema, prefix=""):
    """(path, schema) of every chart field in values.yaml."""
    for key, value in values.items():
        sub = schema.get("properties", {}).get(key)
        assert sub is not None, f"values.yaml field {prefix}{key} is not in values.schema.json"
        yield prefix + key, sub
        if isinstance(value, dict) and sub.get("properties"):
            yield from _paths(value, sub, prefix + key + ".")


def test_schema_and_values_describe_the_same_fields():
    in_values = {p for p, _ in _paths(VALUES, SCHEMA)}

    def schema_paths(schema, prefix=""):
        for key, sub in schema.get("properties", {}).items():
            yield prefix + key
            yield from schema_paths(sub, prefix + key + ".")

    assert set(schema_paths(SCHEMA)) - {"global"} == in_values


def test_every_values_field_is_documented():
    """Each field of values.yaml has a comment right above it (objects may
    instead be documented on their first field)."""
    lines = VALUES_TEXT.splitlines()
    stack = []  # (indent, key)
    undocumented = []
    fields = {p for p, _ in _paths(VALUES, SCHEMA)}
    for i, line in enumerate(lines):
        m = re.match(r"^( *)([A-Za-z][A-Za-z0-9_]*):", line)
        if not m:
            continue
        indent, key = len(m.group(1)), m.group(2)
        while stack and stack[-1][0] >= indent:
            stack.pop()
        path = ".".join([k for _, k in stack] + [key])
        stack.append((indent, key))
        if path not in fields:
            continue  # content of a free-form value (resources, nodeSelector...)
        above = lines[i - 1].strip() if i else ""
        is_object = line.rstrip().endswith(":")
        below = lines[i + 1].strip() if i + 1 < len(lines) else ""
        if not (above.startswith("#") or (is_object and below.startswith("#"))):
            undocumented.append(path)
    assert undocumented == []


def test_failure_policies_are_explained_in_values():
    ingress = VALUES_TEXT.split("  ingress:")[1].split("  pod:")[0]
    pod = VALUES_TEXT.split("  pod:")[1].split("matchConditions")[0]
    assert "Fail" in ingress and "failurePolicy: Fail" in ingress and len(ingress) > 300
    assert "Ignore" in pod and "failurePolicy: Ignore" in pod and len(pod) > 300
