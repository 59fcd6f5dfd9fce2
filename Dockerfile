# syntax=docker/dockerfile:1
# certweave: one static-ish binary on a distroless, non-root base.

FROM rust:1.95.0-bookworm AS build
WORKDIR /src
# Cache dependencies: build a dummy crate with the real manifests first.
COPY Cargo.toml Cargo.lock ./
RUN mkdir -p src benches && echo 'fn main() {}' > src/main.rs && touch src/lib.rs \
    && echo 'fn main() {}' > benches/admission.rs \
    && cargo build --release --locked --bin certweave \
    && rm -rf src benches
COPY src ./src
COPY benches ./benches
RUN touch src/main.rs src/lib.rs && cargo build --release --locked --bin certweave \
    && strip target/release/certweave

FROM gcr.io/distroless/cc-debian12:nonroot
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="certweave" \
      org.opencontainers.image.description="Automatic TLS certificates for Kubernetes: admission webhook, issuance engine and renewal queue in one binary" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /src/target/release/certweave /usr/local/bin/certweave
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/certweave"]
