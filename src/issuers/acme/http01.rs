//! The built-in HTTP-01 solver: one HTTP server that answers
//! `/.well-known/acme-challenge/<token>` for every order in flight.
//!
//! cert-manager starts a solver Pod per challenge; certweave keeps a shared
//! token map instead, so any number of orders can be validated at once on
//! one port (`certweave issue --http01-addr`, the controller's
//! `--solver-addr`). A token is served from the moment the order driver
//! presents it until its [`ChallengeToken`] guard is dropped, which happens
//! on success, on failure and on cancellation alike.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// The path prefix ACME servers fetch (RFC 8555 §8.3).
pub const CHALLENGE_PATH: &str = "/.well-known/acme-challenge/";

type Tokens = Arc<RwLock<HashMap<String, String>>>;

/// The token map, shared by the server and every order. Cheap to clone.
#[derive(Clone, Default, Debug)]
pub struct Http01Solver {
    tokens: Tokens,
}

impl Http01Solver {
    pub fn new() -> Self {
        Self::default()
    }

    /// Serves `key_authorization` for `token` until the guard is dropped.
    pub fn present(&self, token: &str, key_authorization: String) -> ChallengeToken {
        self.tokens
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(token.to_owned(), key_authorization);
        ChallengeToken {
            tokens: self.tokens.clone(),
            token: token.to_owned(),
        }
    }

    /// How many tokens are being served now.
    pub fn active(&self) -> usize {
        self.tokens.read().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// The routes, for mounting into a server the caller already runs.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/.well-known/acme-challenge/{token}", get(answer))
            .with_state(self.tokens.clone())
    }

    /// Binds `addr` and serves the challenges until the returned server is
    /// dropped.
    pub async fn serve(&self, addr: SocketAddr) -> std::io::Result<Http01Server> {
        let listener = TcpListener::bind(addr).await?;
        let local_addr = listener.local_addr()?;
        let (stop, stopped) = oneshot::channel::<()>();
        let router = self.router();
        let task = tokio::spawn(async move {
            let served = axum::serve(listener, router)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await;
            if let Err(e) = served {
                tracing::warn!(error = %e, "HTTP-01 solver stopped");
            }
        });
        tracing::debug!(addr = %local_addr, "HTTP-01 solver listening");
        Ok(Http01Server {
            local_addr,
            stop: Some(stop),
            task,
        })
    }
}

async fn answer(State(tokens): State<Tokens>, Path(token): Path<String>) -> Response {
    let found = tokens
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .get(&token)
        .cloned();
    match found {
        Some(key_authorization) => (
            [(header::CONTENT_TYPE, "application/octet-stream")],
            key_authorization,
        )
            .into_response(),
        None => {
            tracing::debug!(%token, "HTTP-01 request for an unknown token");
            StatusCode::NOT_FOUND.into_response()
        }
    }
}

/// Keeps a token served; removes it when dropped.
#[derive(Debug)]
pub struct ChallengeToken {
    tokens: Tokens,
    token: String,
}

impl Drop for ChallengeToken {
    fn drop(&mut self) {
        self.tokens
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.token);
    }
}

/// A running solver server; stops when dropped.
#[derive(Debug)]
pub struct Http01Server {
    local_addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl Http01Server {
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }
}

impl Drop for Http01Server {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        // Open keep-alive connections would hold a graceful shutdown open.
        self.task.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn fetch(addr: SocketAddr, path: &str) -> String {
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        stream
            .write_all(
                format!("GET {path} HTTP/1.1\r\nHost: example.test\r\nConnection: close\r\n\r\n")
                    .as_bytes(),
            )
            .await
            .unwrap();
        let mut out = String::new();
        stream.read_to_string(&mut out).await.unwrap();
        out
    }

    #[tokio::test]
    async fn tokens_are_served_while_presented_for_many_orders_at_once() {
        let solver = Http01Solver::new();
        let server = solver.serve("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let addr = server.local_addr();
        let first = solver.present("tok-a", "tok-a.thumb".into());
        let second = solver.present("tok-b", "tok-b.thumb".into());
        assert_eq!(solver.active(), 2);

        let a = fetch(addr, "/.well-known/acme-challenge/tok-a").await;
        assert!(a.starts_with("HTTP/1.1 200"), "{a}");
        assert!(a.ends_with("tok-a.thumb"), "{a}");
        let b = fetch(addr, "/.well-known/acme-challenge/tok-b").await;
        assert!(b.ends_with("tok-b.thumb"), "{b}");

        drop(first);
        let gone = fetch(addr, "/.well-known/acme-challenge/tok-a").await;
        assert!(gone.starts_with("HTTP/1.1 404"), "{gone}");
        assert_eq!(solver.active(), 1);
        drop(second);
        assert_eq!(solver.active(), 0);

        drop(server);
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert!(tokio::net::TcpStream::connect(addr).await.is_err());
    }
}
