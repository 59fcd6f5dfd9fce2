//! Key generation and signing throughput per key algorithm.
//!
//! Groups (criterion ids are `<group>/<algorithm>`):
//!
//! - `keygen`: `PrivateKey::generate` — what a certificate with
//!   `rotationPolicy: Always` pays on every renewal (RSA from AWS-LC);
//! - `keygen_portable/rsa2048`: the pure-Rust `rsa` crate's RSA-2048, the
//!   generator before AWS-LC, as the baseline in the same run;
//! - `sign_raw`: one signature over 32 bytes with the key (rcgen's backend,
//!   AWS-LC); `sign_raw_ring/<rsa>`: the same with ring, the signer before
//!   AWS-LC, as the baseline in the same run;
//!   the figure `openssl speed` reports, so the two compare directly;
//! - `selfsigned`: `SelfSignedIssuer::sign` for a single-name certificate:
//!   build, sign, encode the key as PEM, and check the bundle (parse, key
//!   match, signature verification);
//! - `ca`: `CaIssuer::sign` with a CA key of that algorithm for a leaf key
//!   of the same algorithm: as above, plus the chain-to-root verification.
//!
//! `benches/pki_vs_openssl.sh` runs this and `openssl speed` on the same
//! machine and prints both with ratios.
//!
//! Run: `cargo bench --bench pki` (add `-- --quick` for a short run).

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkGroup, Criterion, Throughput};
use rcgen::SigningKey;

use certweave::issuers::ca::CaIssuer;
use certweave::issuers::selfsigned::SelfSignedIssuer;
use certweave::model::key::generate_rsa_pkcs8_portable;
use certweave::model::CertificateRequest;
use certweave::pki::{KeyAlgorithm, KeyEncoding, PrivateKey};

const ALGORITHMS: [KeyAlgorithm; 6] = [
    KeyAlgorithm::EcdsaP256,
    KeyAlgorithm::EcdsaP384,
    KeyAlgorithm::Rsa(2048),
    KeyAlgorithm::Rsa(3072),
    KeyAlgorithm::Rsa(4096),
    KeyAlgorithm::Ed25519,
];

/// RSA key generation takes tens to hundreds of milliseconds (a random
/// prime search, so its time varies widely); criterion's default 100
/// samples would take minutes.
fn configure_for(
    group: &mut BenchmarkGroup<'_, criterion::measurement::WallTime>,
    alg: KeyAlgorithm,
) {
    match alg {
        KeyAlgorithm::Rsa(bits) if bits >= 4096 => {
            group.sample_size(10);
            group.measurement_time(Duration::from_secs(30));
        }
        KeyAlgorithm::Rsa(_) => {
            group.sample_size(10);
            group.measurement_time(Duration::from_secs(10));
        }
        _ => {
            group.sample_size(50);
            group.measurement_time(Duration::from_secs(3));
        }
    }
}

fn keygen(c: &mut Criterion) {
    for alg in ALGORITHMS {
        // One group per algorithm would split the report; instead the
        // group is reconfigured before each function.
        let mut group = c.benchmark_group("keygen");
        group.throughput(Throughput::Elements(1));
        configure_for(&mut group, alg);
        group.bench_function(alg.to_string(), |b| {
            b.iter(|| black_box(PrivateKey::generate(black_box(alg)).unwrap()))
        });
        group.finish();
    }
    // The baseline in the same run: RSA-2048 from the pure-Rust `rsa`
    // crate, certweave's generator before AWS-LC.
    let mut group = c.benchmark_group("keygen_portable");
    group.throughput(Throughput::Elements(1));
    configure_for(&mut group, KeyAlgorithm::Rsa(2048));
    group.measurement_time(Duration::from_secs(20));
    group.bench_function("rsa2048", |b| {
        b.iter(|| black_box(generate_rsa_pkcs8_portable(black_box(2048)).unwrap()))
    });
    group.finish();
}

fn sign_raw(c: &mut Criterion) {
    let mut group = c.benchmark_group("sign_raw");
    group.throughput(Throughput::Elements(1));
    group.sample_size(50);
    group.measurement_time(Duration::from_secs(3));
    let digest = [0x5au8; 32];
    for alg in ALGORITHMS {
        let key = PrivateKey::generate(alg).unwrap();
        group.bench_function(alg.to_string(), |b| {
            b.iter(|| black_box(key.key_pair().sign(black_box(&digest)).unwrap()))
        });
    }
    group.finish();
    // The baseline in the same run: RSA signatures with ring, certweave's
    // signer before AWS-LC.
    let mut group = c.benchmark_group("sign_raw_ring");
    group.throughput(Throughput::Elements(1));
    group.sample_size(50);
    group.measurement_time(Duration::from_secs(3));
    for bits in [2048, 3072, 4096] {
        let der = ring_pkcs8(&PrivateKey::generate(KeyAlgorithm::Rsa(bits)).unwrap());
        let key = ring::signature::RsaKeyPair::from_pkcs8(&der).unwrap();
        let rng = ring::rand::SystemRandom::new();
        let mut signature = vec![0; key.public().modulus_len()];
        group.bench_function(format!("rsa{bits}"), |b| {
            b.iter(|| {
                key.sign(
                    &ring::signature::RSA_PKCS1_SHA256,
                    &rng,
                    black_box(&digest),
                    &mut signature,
                )
                .unwrap();
                black_box(&signature);
            })
        });
    }
    group.finish();
}

/// The key as PKCS#8 DER.
fn ring_pkcs8(key: &PrivateKey) -> Vec<u8> {
    use base64::Engine as _;
    let pem = key.to_pem(KeyEncoding::Pkcs8).unwrap();
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    base64::engine::general_purpose::STANDARD
        .decode(body)
        .unwrap()
}

fn request(alg: KeyAlgorithm) -> CertificateRequest {
    let mut request = CertificateRequest::for_dns_names(["bench.example"]);
    request.key_algorithm = alg;
    request
}

fn selfsigned(c: &mut Criterion) {
    let mut group = c.benchmark_group("selfsigned");
    group.throughput(Throughput::Elements(1));
    group.sample_size(50);
    group.measurement_time(Duration::from_secs(3));
    for alg in ALGORITHMS {
        let key = PrivateKey::generate(alg).unwrap();
        let request = request(alg);
        group.bench_function(alg.to_string(), |b| {
            b.iter(|| {
                black_box(
                    SelfSignedIssuer::default()
                        .sign(black_box(&request), &key)
                        .unwrap(),
                )
            })
        });
    }
    group.finish();
}

fn ca(c: &mut Criterion) {
    let mut group = c.benchmark_group("ca");
    group.throughput(Throughput::Elements(1));
    group.sample_size(50);
    group.measurement_time(Duration::from_secs(3));
    for alg in ALGORITHMS {
        let ca_key = PrivateKey::generate(alg).unwrap();
        let mut ca_request = CertificateRequest::for_dns_names(Vec::<String>::new());
        ca_request.common_name = Some(format!("bench {alg} CA"));
        ca_request.is_ca = true;
        ca_request.key_algorithm = alg;
        let ca_bundle = SelfSignedIssuer::default()
            .sign(&ca_request, &ca_key)
            .unwrap();
        let issuer = CaIssuer::from_pem(
            &ca_bundle.chain_pem,
            &ca_key.to_pem(KeyEncoding::Pkcs8).unwrap(),
        )
        .unwrap();
        let leaf_key = PrivateKey::generate(alg).unwrap();
        let request = request(alg);
        group.bench_function(alg.to_string(), |b| {
            b.iter(|| black_box(issuer.sign(black_box(&request), &leaf_key).unwrap()))
        });
    }
    group.finish();
}

criterion_group!(benches, keygen, sign_raw, selfsigned, ca);
criterion_main!(benches);
