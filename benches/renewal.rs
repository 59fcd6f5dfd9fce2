//! The renewal queue at scale, and rebuilding it from a store.
//!
//! Targets: 1,000,000 scheduled entries in ≤ 256 MiB with O(log n)
//! schedule/pop/reschedule; rebuilding from 100,000 stored certificates in
//! ≤ 2 s. Prints a summary table with the memory per entry, the per-op cost
//! at 1k and 1M entries (their ratio shows the log growth), and the rebuild
//! time against reading the same files' bytes alone (the I/O floor).

use std::hint::black_box;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use certweave::engine::renewal::RenewalQueue;
use certweave::store::fs::FsStore;
use certweave::store::{CertificateState, ObjectKey};
use criterion::{criterion_group, Criterion};

fn t(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_800_000_000 + secs)
}

/// Later than every due time the benchmarks schedule.
fn far_future() -> SystemTime {
    t(1000 * 365 * 86400)
}

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

/// Spreads due times pseudo-randomly over a year.
fn due(i: u64) -> SystemTime {
    t(i.wrapping_mul(2654435761) % (365 * 86400))
}

fn filled(n: u64) -> RenewalQueue<ObjectKey> {
    let mut q = RenewalQueue::with_capacity(n as usize);
    for i in 0..n {
        q.schedule(
            ObjectKey::new(format!("ns{}", i % 100), format!("cert-{i}")),
            due(i),
        );
    }
    q
}

/// `cargo bench` passes `--bench`; `cargo test` runs benches once as a
/// smoke test, where a million entries would only cost time.
fn benchmarking() -> bool {
    std::env::args().any(|a| a == "--bench")
}

fn bench_queue(c: &mut Criterion) {
    let mut group = c.benchmark_group("queue");
    let sizes: &[u64] = if benchmarking() {
        &[1_000, 1_000_000]
    } else {
        &[1_000]
    };
    for &n in sizes {
        let mut q = filled(n);
        let mut i = 0u64;
        group.bench_function(format!("reschedule_at_{n}"), |b| {
            b.iter(|| {
                i += 1;
                let key = ObjectKey::new(format!("ns{}", i % 100), format!("cert-{}", i % n));
                q.schedule(key, due(i + 7));
            })
        });
        group.bench_function(format!("pop_and_reschedule_at_{n}"), |b| {
            b.iter(|| {
                let key = q.pop_due(far_future()).expect("entries are due");
                q.schedule(black_box(key), t(366 * 86400 + i));
                i += 1;
            })
        });
    }
    group.finish();
}

fn time_per_op(n: u64, ops: u64) -> Duration {
    let mut q = filled(n);
    let start = Instant::now();
    for i in 0..ops {
        let key = q.pop_due(far_future()).expect("due");
        q.schedule(key, t(366 * 86400 + i));
    }
    start.elapsed() / ops as u32
}

/// Set in the child process that measures the queue's memory.
const MEASURE_MEMORY_ENV: &str = "CERTWEAVE_BENCH_QUEUE_RSS";

/// Resident bytes that 1,000,000 entries add to a fresh process. Measured in
/// a child (this benchmark run again with [`MEASURE_MEMORY_ENV`] set): in
/// this process the allocator keeps the memory the benchmarks above freed
/// and serves the queue from it, so the resident size would not grow.
fn queue_memory_in_child() -> u64 {
    let exe = std::env::current_exe().expect("the benchmark knows its own path");
    let output = std::process::Command::new(exe)
        .env(MEASURE_MEMORY_ENV, "1")
        .output()
        .expect("the benchmark can run itself");
    let stdout = String::from_utf8_lossy(&output.stdout);
    stdout
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("memory child printed {stdout:?}, {output:?}"))
}

fn measure_memory() {
    let before = rss_bytes();
    let q = filled(1_000_000);
    let after = rss_bytes();
    drop(black_box(q));
    println!("{}", after.saturating_sub(before));
}

fn summary() {
    let grown = queue_memory_in_child();
    let per_entry = grown as f64 / 1e6;
    println!("\n== renewal queue summary");
    println!(
        "1,000,000 entries: {:.1} MiB resident ({per_entry:.0} bytes/entry; target <= 256 MiB total)",
        grown as f64 / (1024.0 * 1024.0)
    );
    let small = time_per_op(1_000, 200_000);
    let large = time_per_op(1_000_000, 200_000);
    println!(
        "pop+reschedule: {:?}/op at 1k, {:?}/op at 1M: ratio {:.2} for 1000x the entries (O(log n) predicts ~2)",
        small,
        large,
        large.as_secs_f64() / small.as_secs_f64()
    );

    let dir = tempfile::tempdir().unwrap();
    let store = FsStore::new(dir.path());
    let n = 100_000u64;
    let state = CertificateState {
        revision: 1,
        not_before: Some(t(0)),
        not_after: Some(t(90 * 86400)),
        renewal_time: Some(t(60 * 86400)),
        ready: true,
        message: Some("Certificate is up to date and has not expired".into()),
        ..Default::default()
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(async {
        use certweave::store::Store;
        for i in 0..n {
            store
                .write_state(
                    &ObjectKey::new(format!("ns{}", i % 100), format!("cert-{i}")),
                    &state,
                )
                .await
                .unwrap();
        }
    });
    // Baseline: just reading every state file's bytes.
    let start = Instant::now();
    let mut bytes = 0usize;
    for ns in std::fs::read_dir(dir.path().join("state/certificates"))
        .unwrap()
        .flatten()
    {
        for f in std::fs::read_dir(ns.path()).unwrap().flatten() {
            bytes += std::fs::read(f.path()).unwrap().len();
        }
    }
    let read_only = start.elapsed();
    let start = Instant::now();
    let (states, errors) = store.list_states_sync().unwrap();
    let mut q = RenewalQueue::with_capacity(states.len());
    for (key, state) in states {
        q.schedule(
            key,
            state.next_attempt.or(state.renewal_time).unwrap_or(t(0)),
        );
    }
    let rebuild = start.elapsed();
    assert!(errors.is_empty());
    assert_eq!(q.len(), n as usize);
    println!(
        "rebuild from {n} stored certificates: {rebuild:?} (target <= 2 s); reading the {} MiB of state alone: {read_only:?}; ratio {:.2}",
        bytes / (1024 * 1024),
        rebuild.as_secs_f64() / read_only.as_secs_f64()
    );
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).measurement_time(Duration::from_secs(3));
    targets = bench_queue
}

fn main() {
    if std::env::var_os(MEASURE_MEMORY_ENV).is_some() {
        measure_memory();
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
    if benchmarking() {
        summary();
    }
}
