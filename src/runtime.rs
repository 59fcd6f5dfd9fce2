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
