//! RSA key generation with AWS-LC (what certweave uses), graviola and the
//! pure-Rust `rsa` 0.10: for each key size given, each generator's seconds
//! per key, printed as "rsa<bits> <generator> <s/key>".
//!
//! Each key is taken the way certweave would take it: graviola's and
//! `rsa`'s are encoded as PKCS#8 and parsed by AWS-LC (which checks the key
//! and signs with it); AWS-LC's own are used as they come. The generators
//! take turns key by key, so a change in the machine's load falls on all of
//! them alike.
//!
//! `cargo run --release -- 2048 3072 4096`

use std::time::{Duration, Instant};

use rsa::pkcs8::EncodePrivateKey;

const GENERATORS: [&str; 3] = ["aws-lc-rs", "graviola", "rsa-0.10"];

fn generate(generator: &str, bits: usize) {
    match generator {
        "aws-lc-rs" => {
            let size = match bits {
                2048 => aws_lc_rs::rsa::KeySize::Rsa2048,
                3072 => aws_lc_rs::rsa::KeySize::Rsa3072,
                4096 => aws_lc_rs::rsa::KeySize::Rsa4096,
                _ => aws_lc_rs::rsa::KeySize::Rsa8192,
            };
            aws_lc_rs::rsa::KeyPair::generate(size).expect("AWS-LC generates a key");
        }
        "graviola" => {
            let size =
                graviola::signing::rsa::KeySize::try_from(bits).expect("a size graviola has");
            let key = graviola::signing::rsa::SigningKey::generate(size)
                .expect("graviola generates a key");
            let mut buffer = vec![0u8; 8192];
            let der = key
                .to_pkcs8_der(&mut buffer)
                .expect("graviola encodes its key");
            aws_lc_rs::rsa::KeyPair::from_pkcs8(der).expect("AWS-LC takes graviola's key");
        }
        _ => {
            let key = rsa::PrivateKey::new(&mut rand::rng(), bits).expect("rsa generates a key");
            let der = key.to_pkcs8_der().expect("rsa encodes its key");
            aws_lc_rs::rsa::KeyPair::from_pkcs8(der.as_bytes()).expect("AWS-LC takes rsa's key");
        }
    }
}

fn main() {
    for arg in std::env::args().skip(1) {
        let bits: usize = arg.parse().unwrap_or_else(|_| {
            eprintln!("{arg:?} is not a key size");
            std::process::exit(2)
        });
        // RSA key generation time is random (how far the next prime is), so
        // each generator gets many keys: at least 20, and at least 8 s each.
        let budget = Duration::from_secs(8) * GENERATORS.len() as u32;
        let mut spent = [Duration::ZERO; GENERATORS.len()];
        let mut keys = [0u32; GENERATORS.len()];
        let start = Instant::now();
        while start.elapsed() < budget || keys.iter().any(|&n| n < 20) {
            for (i, generator) in GENERATORS.iter().enumerate() {
                let one = Instant::now();
                generate(generator, bits);
                spent[i] += one.elapsed();
                keys[i] += 1;
            }
        }
        for (i, generator) in GENERATORS.iter().enumerate() {
            println!(
                "rsa{bits} {generator} {:.9}",
                spent[i].as_secs_f64() / f64::from(keys[i])
            );
        }
    }
}
