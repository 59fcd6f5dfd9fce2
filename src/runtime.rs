//! The async runtime every long-running subcommand runs on, and the signal
//! that stops it. One builder, so every subcommand gets the same runtime
//! (multi-threaded, timers and I/O enabled) and fails to start the same way.

use std::future::Future;

use tokio::runtime::Runtime;

/// Why the runtime could not start (threads or the I/O driver refused).
#[derive(Debug, thiserror::Error)]
#[error("cannot start the async runtime")]
pub struct RuntimeError(#[source] std::io::Error);

/// A multi-threaded runtime with timers and I/O, one worker per core.
pub fn multi_thread() -> Result<Runtime, RuntimeError> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(RuntimeError)
}

/// The runtime for a process that serves one connection's work at a time
/// on whatever cores it may use: single-threaded when that is one core (a
/// sidecar under a one-CPU limit; [`std::thread::available_parallelism`]
/// counts the cgroup quota), where a work-stealing pool of one only adds
/// cross-thread wake-ups and costs measurably more CPU per request; else
/// [`multi_thread`].
pub fn sized_to_cores() -> Result<Runtime, RuntimeError> {
    match std::thread::available_parallelism() {
        Ok(cores) if cores.get() == 1 => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(RuntimeError),
        _ => multi_thread(),
    }
}

/// Completes on SIGTERM (how Kubernetes stops a Pod) or Ctrl-C. The SIGTERM
/// handler is installed when this is called, not when the future is first
/// polled, so a SIGTERM that arrives while the process is still starting
/// stops it cleanly instead of killing it.
pub fn shutdown_signal(runtime: &Runtime) -> impl Future<Output = ()> + Send + 'static {
    let _in_runtime = runtime.enter();
    #[cfg(unix)]
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("installing a SIGTERM handler succeeds at start-up");
    async move {
        #[cfg(unix)]
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
    }
}
