//! The transport baseline for `benches/load.sh`: hyper 1 + hyper-util's auto
//! (HTTP/1.1 + HTTP/2) builder over tokio-rustls with the same TLS
//! configuration as certweave (ring, TLS 1.2/1.3, ALPN h2 and http/1.1).
//! Every POST is read fully and answered with one fixed, pre-encoded
//! AdmissionReview response: the response certweave gives for the Pod
//! fixture, so both servers send the same bytes and the difference between
//! them is certweave's routing, decoding, mutation and encoding.
//!
//! ```text
//! cargo run --release --example bare_webhook -- \
//!     --addr 127.0.0.1:9444 --tls-cert-file tls.crt --tls-key-file tls.key
//! ```

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use bytes::Bytes;
use clap::Parser;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use certweave::tls::{server_config, ReloadingCert};
use certweave::webhook::admission::review;
use certweave::webhook::MutationConfig;

#[derive(Parser)]
struct Args {
    #[arg(long, default_value = "127.0.0.1:9444")]
    addr: SocketAddr,
    #[arg(long)]
    tls_cert_file: PathBuf,
    #[arg(long)]
    tls_key_file: PathBuf,
}

async fn answer(
    request: Request<Incoming>,
    reply: Bytes,
) -> Result<Response<Full<Bytes>>, Infallible> {
    if request.method() != Method::POST {
        let mut response = Response::new(Full::new(Bytes::new()));
        *response.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
        return Ok(response);
    }
    // Read the whole body, as any webhook must before it can answer.
    if request.into_body().collect().await.is_err() {
        let mut response = Response::new(Full::new(Bytes::new()));
        *response.status_mut() = StatusCode::BAD_REQUEST;
        return Ok(response);
    }
    let mut response = Response::new(Full::new(reply));
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    Ok(response)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let reply = review(
        include_bytes!("../benches/fixtures/pod-review.json"),
        &MutationConfig::default(),
    )
    .context("encoding the fixed response")?
    .body;
    let reply = Bytes::from(reply);

    let resolver = ReloadingCert::load(&args.tls_cert_file, &args.tls_key_file)?;
    let acceptor = TlsAcceptor::from(Arc::new(server_config(resolver)));
    let listener = TcpListener::bind(args.addr)
        .await
        .with_context(|| format!("cannot listen on {}", args.addr))?;
    eprintln!("bare_webhook serving on {}", listener.local_addr()?);

    loop {
        let (tcp, _) = match listener.accept().await {
            Ok(conn) => conn,
            Err(e) => {
                eprintln!("accept failed: {e}");
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let reply = reply.clone();
        tokio::spawn(async move {
            let Ok(stream) = acceptor.accept(tcp).await else {
                return;
            };
            let service = service_fn(move |request| answer(request, reply.clone()));
            let _ = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
