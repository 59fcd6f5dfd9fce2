# syntax=docker/dockerfile:1
# certweave: the controller, webhook and TLS sidecar (`certweave proxy`) in
# one image.
#
#   docker build -t certweave/certweave:0.1.0 .
#
# Runtime base: the binary is built for x86_64-unknown-linux-gnu, so it links
# glibc (and libgcc_s for unwinding) dynamically; ring's and AWS-LC's C and
# assembly are compiled into the binary (the builder's gcc is all AWS-LC
# needs) and need nothing at run time. distroless
# cc-debian12 is the smallest image with exactly those libraries, from the
# same Debian release (bookworm, glibc 2.36) as the builder. static-debian12
# has no glibc and would only fit a musl build.

# ---- build -----------------------------------------------------------------
FROM rust:1.95.0-bookworm AS build
WORKDIR /src

# Dependency layer: compile every dependency against stub sources, so that
# an edit under src/ does not rebuild them. Cargo needs every target named
# in Cargo.toml to exist, hence one stub per [[bench]].
COPY Cargo.toml Cargo.lock ./
RUN mkdir -p src benches \
    && echo 'fn main() {}' > src/main.rs \
    && touch src/lib.rs \
    && for bench in $(awk '/^\[\[bench\]\]/ {b=1; next} b && /^name *=/ {gsub(/"/, "", $3); print $3; b=0}' Cargo.toml); do \
         echo 'fn main() {}' > "benches/$bench.rs"; \
       done \
    && cargo build --release --locked --bin certweave \
    && rm -rf src benches

# The real sources (benches/ too: Cargo.toml names its targets).
COPY src ./src
COPY benches ./benches
RUN touch src/main.rs src/lib.rs \
    && cargo build --release --locked --bin certweave \
    && strip target/release/certweave \
    && ./target/release/certweave --version

# ---- runtime ---------------------------------------------------------------
FROM gcr.io/distroless/cc-debian12:nonroot
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="certweave" \
      org.opencontainers.image.description="Automatic TLS for Kubernetes: admission webhook, cert-manager.io/v1 compatible controller, ACME/CA/SelfSigned issuance and renewal in one binary" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.vendor="certweave" \
      org.opencontainers.image.base.name="gcr.io/distroless/cc-debian12:nonroot"
# Only the binary; no shell, no package manager.
COPY --from=build /src/target/release/certweave /usr/local/bin/certweave
# The distroless nonroot user, numerically, so that Kubernetes can verify
# runAsNonRoot without reading /etc/passwd.
USER 65532:65532
# Webhook (HTTPS), metrics and health, ACME HTTP-01 solver.
EXPOSE 9443 9402 8089
ENTRYPOINT ["/usr/local/bin/certweave"]
CMD ["controller"]
