"""Properties of the Dockerfile (the image is not built here: no registry)."""

import re
import tomllib

from helmrender import ROOT

TEXT = (ROOT / "Dockerfile").read_text()
# Instructions with their continuation lines joined, comments dropped.
INSTRUCTIONS = [
    line
    for line in re.sub(r"\\\n", " ", TEXT).splitlines()
    if line.strip() and not line.lstrip().startswith("#")
]


def stages():
    out = []
    for line in INSTRUCTIONS:
        if line.startswith("FROM "):
            out.append([line])
        elif out:
            out[-1].append(line)
    return out


def test_multi_stage_with_pinned_base_tags():
    froms = [s[0].split() for s in stages()]
    assert len(froms) >= 2, "a build stage and a runtime stage"
    for f in froms:
        image = f[1]
        name, _, tag = image.rpartition(":") if ":" in image.split("/")[-1] else (image, "", "")
        assert tag and tag != "latest", f"{image}: pin a tag"
    build_image = froms[0][1]
    assert re.fullmatch(r"rust:1\.\d+(\.\d+)?-bookworm", build_image), build_image
    rust_version = tomllib.loads((ROOT / "Cargo.toml").read_text())["package"]["rust-version"]
    assert build_image.startswith(f"rust:{rust_version}"), "the builder is the crate's rust-version"
    assert froms[-1][1].startswith("gcr.io/distroless/"), "distroless runtime"


def test_runtime_matches_the_libc_of_the_binary():
    runtime = stages()[-1][0].split()[1]
    musl = "musl" in TEXT.split("FROM", 2)[1]
    if "static-debian" in runtime:
        assert musl, "static-debian has no glibc: build for a musl target"
    else:
        assert "cc-debian12" in runtime and "bookworm" in stages()[0][0], "glibc runtime from the builder's Debian release"


def test_dependency_layer_is_built_before_the_sources_are_copied():
    build = stages()[0]
    copy_src = next(i for i, l in enumerate(build) if re.match(r"COPY src\b", l))
    dep_build = next(i for i, l in enumerate(build) if l.startswith("RUN") and "cargo build" in l)
    manifests = next(i for i, l in enumerate(build) if l.startswith("COPY Cargo.toml Cargo.lock"))
    assert manifests < dep_build < copy_src
    assert all("--locked" in l for l in build if "cargo build" in l)


def test_runtime_stage_runs_as_numeric_non_root_and_holds_only_the_binary():
    runtime = stages()[-1]
    users = [l.split()[1] for l in runtime if l.startswith("USER ")]
    assert users, "USER in the runtime stage"
    uid, _, gid = users[-1].partition(":")
    assert uid.isdigit() and int(uid) > 0, "numeric non-root user"
    assert not gid or (gid.isdigit() and int(gid) > 0)
    copies = [l for l in runtime if l.startswith(("COPY", "ADD"))]
    assert copies == ["COPY --from=build /src/target/release/certweave /usr/local/bin/certweave"]
    assert not [l for l in runtime if l.startswith("RUN")], "nothing runs in a distroless stage"
    entry = next(l for l in runtime if l.startswith("ENTRYPOINT"))
    assert entry == 'ENTRYPOINT ["/usr/local/bin/certweave"]', "exec form"


def test_chart_runs_the_image_as_the_dockerfile_user():
    import yaml

    uid = next(l.split()[1] for l in stages()[-1] if l.startswith("USER ")).split(":")[0]
    values = yaml.safe_load((ROOT / "charts" / "certweave" / "values.yaml").read_text())
    assert values["runAsUser"] == int(uid)


def test_oci_labels():
    runtime = " ".join(stages()[-1])
    for label in ("title", "description", "version", "licenses"):
        assert f"org.opencontainers.image.{label}=" in runtime, label
    licence = tomllib.loads((ROOT / "Cargo.toml").read_text())["package"]["license"]
    assert f'org.opencontainers.image.licenses="{licence}"' in runtime


def test_dockerignore_keeps_the_context_small():
    ignored = {l.strip() for l in (ROOT / ".dockerignore").read_text().splitlines() if l.strip() and not l.startswith("#")}
    assert {"target", ".git"} <= ignored
    for needed in ("src", "benches", "Cargo.toml", "Cargo.lock"):
        assert needed not in ignored, needed
