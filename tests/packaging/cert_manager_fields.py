"""Every field of cert-manager's v1 CRDs, and what certweave does with it.

    python3 tests/packaging/cert_manager_fields.py [--markdown]

cert-manager's schemas come from its Go module (the release named in
CERT_MANAGER_VERSION, through `go mod download`, as e2e/assets.sh gets the
other Go peers); certweave's from the committed charts/certweave/crds/crds.yaml
(test_sync.py and tests/crds.rs keep it equal to `certweave crds`).

A field is
- implemented: certweave's schema has it and no rule refuses it;
- refused: a CEL rule of certweave's CRD refuses it with a message naming
  it (the message is shown);
- pruned: certweave's schema lacks it, so the API server drops it without a
  word. This is what must not happen to a cert-manager manifest.
A kind certweave does not serve at all is reported as such.
"""

import json
import re
import subprocess
import sys
from pathlib import Path

import yaml

CERT_MANAGER_VERSION = "v1.21.2"
REPO = Path(__file__).resolve().parents[2]
CERTWEAVE_CRDS = REPO / "charts" / "certweave" / "crds" / "crds.yaml"
KINDS = ["Certificate", "CertificateRequest", "Issuer", "ClusterIssuer"]
REFUSAL = re.compile(r"not (supported|written) by certweave")


def cert_manager_crds():
    """cert-manager's CRDs by kind, from its Go module."""
    out = subprocess.run(
        ["go", "mod", "download", "-json", f"github.com/cert-manager/cert-manager@{CERT_MANAGER_VERSION}"],
        check=True,
        capture_output=True,
        text=True,
        cwd="/",
    )
    module = Path(json.loads(out.stdout)["Dir"])
    crds = {}
    for path in (module / "deploy" / "crds").glob("cert-manager.io_*.yaml"):
        crd = yaml.safe_load(path.read_text())
        crds[crd["spec"]["names"]["kind"]] = crd
    return crds


def certweave_crds():
    crds = {}
    for crd in yaml.safe_load_all(CERTWEAVE_CRDS.read_text()):
        if crd:
            crds[crd["spec"]["names"]["kind"]] = crd
    return crds


def schema_of(crd):
    version = next(v for v in crd["spec"]["versions"] if v["name"] == "v1")
    return version["schema"]["openAPIV3Schema"]


def leaves(schema, path=""):
    """(path, schema) of every field, parents before children."""
    for name, sub in (schema.get("properties") or {}).items():
        here = f"{path}.{name}" if path else name
        yield here, sub
        if sub.get("type") == "array" and isinstance(sub.get("items"), dict):
            yield from leaves(sub["items"], here + "[]")
        else:
            yield from leaves(sub, here)


def rule_messages(schema):
    """Every CEL rule message anywhere in the schema."""
    messages = [r.get("message", "") for r in schema.get("x-kubernetes-validations") or []]
    for _, sub in leaves(schema):
        messages += [r.get("message", "") for r in sub.get("x-kubernetes-validations") or []]
    return messages


def classify(kind, cm_crd, cw_crd):
    """[(field, status, detail)] for every field of cert-manager's `kind`."""
    cm = schema_of(cm_crd)
    if cw_crd is None:
        return [(path, "not served", f"certweave has no {kind} resource") for path, _ in leaves(cm)
                if path.startswith("spec")]
    cw = schema_of(cw_crd)
    have = {path for path, _ in leaves(cw)}
    open_objects = {path for path, sub in leaves(cw) if sub.get("x-kubernetes-preserve-unknown-fields")}
    refusals = [m for m in rule_messages(cw) if REFUSAL.search(m)]
    rows = []
    for path, _ in leaves(cm):
        if not path.startswith("spec"):
            continue
        dotted = path.replace("[]", "")
        ancestors = [dotted[:i] for i, c in enumerate(dotted + ".") if c == "."]
        refusal = next(
            (m for m in refusals for a in ancestors if m.replace("[]", "").startswith(a + ":")), None
        )
        if refusal:
            rows.append((path, "refused", refusal))
        elif path in have:
            rows.append((path, "implemented", ""))
        elif any(path.startswith(o + ".") or path.startswith(o + "[]") for o in open_objects):
            rows.append((path, "implemented", "kept as given"))
        else:
            rows.append((path, "pruned", "missing from certweave's schema: dropped without a word"))
    return rows


def report():
    cm, cw = cert_manager_crds(), certweave_crds()
    return {kind: classify(kind, cm[kind], cw.get(kind)) for kind in KINDS}


def main(argv):
    markdown = "--markdown" in argv
    table = report()
    for kind, rows in table.items():
        counts = {}
        for _, status, _ in rows:
            counts[status] = counts.get(status, 0) + 1
        summary = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
        print(f"\n{kind} ({summary})" if not markdown else f"\n### {kind} ({summary})\n")
        if markdown:
            print("| field | certweave | |\n|---|---|---|")
        for path, status, detail in rows:
            if markdown:
                print(f"| `{path}` | {status} | {detail} |")
            else:
                print(f"  {status:12} {path}  {detail}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
