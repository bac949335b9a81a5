//! `fitlake serve`: the HTTP API devices post events to (axum on hyper, tower-http).
//!
//! `POST /v1/bpm`, `/v1/workouts`, `/v1/profile` take one JSON object, a JSON array or NDJSON
//! (`Content-Type: application/json` or `application/x-ndjson`, else `415`). Each record is
//! validated as its topic's value; the valid ones are wrapped in multiplex envelopes and landed
//! as one NDJSON file in the landing zone (a new, uniquely named file, flushed to disk and never
//! replacing another) before the answer: `202` when every record was accepted, `400` with the
//! first [`REPORTED_REJECTIONS`] reasons and the count otherwise (the good ones are landed all
//! the same). Nothing answered 202 is lost; a client retries anything else.
//!
//! Who may post: a bearer token of the token file ([`crate::tokens`]; `401` otherwise), or,
//! with mutual TLS, a client certificate signed by the configured authority. Without either the
//! server refuses to start.
//!
//! What a client cannot do: hold a connection without sending its headers (closed after the
//! header timeout), trickle a body (closed after the body timeout), send more than the body
//! limit (`413`) or the record limit (`413`), open more than the connection cap (further
//! connections wait in the kernel's backlog), or keep the landing slots (`--max-in-flight`) by
//! uploading slowly: a slot is taken only once the whole body has arrived; more requests than
//! slots get `503` with `Retry-After: 1`. On SIGTERM the server stops accepting and drains the
//! requests in flight.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use fitlake_governance::policy::Zone;
use fitlake_landing::device_events::envelopes_at_most;
use fitlake_landing::sources::KAFKA_MULTIPLEX;
use fitlake_landing::topics;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{watch, Semaphore};
use tower::ServiceExt as _;

use fitlake_storage::{Access, Folder};

use crate::tokens::TokenStore;
use crate::{Error, Result};

/// Rejected records named in a 400 answer; the rest are counted.
pub const REPORTED_REJECTIONS: usize = 20;

/// How the server runs.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Most requests being validated and landed at once; more get 503.
    pub max_in_flight: usize,
    /// Largest request body; larger get 413.
    pub max_body_bytes: usize,
    /// Most records in one request; more get 413.
    pub max_records: usize,
    /// Most open connections; more wait to be accepted.
    pub max_connections: usize,
    /// Time a connection has to send a request's headers (and, with TLS, finish its handshake);
    /// also how long an idle keep-alive connection stays open.
    pub header_timeout: Duration,
    /// Time a request has to send its whole body.
    pub body_timeout: Duration,
    /// How long a stopping server waits for requests in flight.
    pub drain_timeout: Duration,
    /// The bearer-token file ([`crate::tokens`]).
    pub tokens: Option<PathBuf>,
    /// TLS: the server's certificate chain and key (PEM).
    pub tls: Option<(PathBuf, PathBuf)>,
    /// Mutual TLS: clients must present a certificate signed by an authority in this PEM file.
    pub client_ca: Option<PathBuf>,
}

impl ServeOptions {
    /// Options with the defaults of `fitlake serve` and no authentication configured.
    pub fn new(listen: SocketAddr) -> ServeOptions {
        ServeOptions {
            listen,
            max_in_flight: 64,
            max_body_bytes: 16 << 20,
            max_records: 100_000,
            max_connections: 1024,
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            drain_timeout: Duration::from_secs(30),
            tokens: None,
            tls: None,
            client_ca: None,
        }
    }
}

struct AppState {
    landing: Folder,
    in_flight: Semaphore,
    max_records: usize,
    next_offset: AtomicI64,
    next_file: AtomicI64,
    /// This server process among others landing into the same zone: its pid and start time.
    instance: String,
    tokens: Option<TokenStore>,
}

/// Who a request comes from: a token's name or a client certificate.
#[derive(Debug, Clone)]
struct Caller(String);

fn reply(status: StatusCode, body: serde_json::Value) -> Response {
    let mut response = (status, axum::Json(body)).into_response();
    if status == StatusCode::SERVICE_UNAVAILABLE {
        response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    if status == StatusCode::UNAUTHORIZED {
        response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    response
}

fn topic_of(path: &str) -> Option<&'static str> {
    match path {
        "bpm" => Some(topics::BPM),
        "workouts" => Some(topics::WORKOUT),
        "profile" => Some(topics::USER_INFO),
        _ => None,
    }
}

/// Lets a request through when its connection presented a client certificate or it carries a
/// valid bearer token.
async fn authenticate(State(state): State<Arc<AppState>>, mut request: Request, next: Next) -> Response {
    if request.extensions().get::<Caller>().is_some() {
        return next.run(request).await;
    }
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    let caller = match (&state.tokens, presented) {
        (Some(tokens), Some(token)) => tokens.verify(token),
        _ => None,
    };
    match caller {
        Some(name) => {
            request.extensions_mut().insert(Caller(name));
            next.run(request).await
        }
        None => reply(StatusCode::UNAUTHORIZED, serde_json::json!({"error": "a valid bearer token is needed"})),
    }
}

async fn ingest(
    State(state): State<Arc<AppState>>,
    Path(path): Path<String>,
    caller: Option<axum::Extension<Caller>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(topic) = topic_of(&path) else {
        return reply(
            StatusCode::NOT_FOUND,
            serde_json::json!({"error": "POST to /v1/bpm, /v1/workouts or /v1/profile"}),
        );
    };
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let media = content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    if !matches!(media.as_str(), "application/json" | "application/x-ndjson" | "application/ndjson") {
        return reply(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            serde_json::json!({"error": "Content-Type must be application/json or application/x-ndjson"}),
        );
    }
    // The body has arrived: only now is a landing slot taken.
    let Ok(_permit) = state.in_flight.try_acquire() else {
        return reply(StatusCode::SERVICE_UNAVAILABLE, serde_json::json!({"error": "overloaded; retry"}));
    };
    let Ok(text) = std::str::from_utf8(&body) else {
        return reply(StatusCode::BAD_REQUEST, serde_json::json!({"error": "the body is not UTF-8"}));
    };
    let received_ms = chrono::Utc::now().timestamp_millis();
    // A body has fewer records than bytes: reserving one offset per byte keeps offsets unique.
    let first_offset = state.next_offset.fetch_add(text.len() as i64 + 1, Ordering::Relaxed);
    let events = match envelopes_at_most(topic, text, first_offset, received_ms, state.max_records) {
        Ok(events) => events,
        Err(reason) => return reply(StatusCode::PAYLOAD_TOO_LARGE, serde_json::json!({"error": reason})),
    };
    if events.accepted > 0 {
        // Unique across processes (the instance id) and, should a name ever be taken, never
        // overwriting: the next number is tried.
        let bytes = events.ndjson.into_bytes();
        loop {
            let n = state.next_file.fetch_add(1, Ordering::Relaxed);
            let name = format!("http-{topic}-{received_ms}-{}-{n:08}.json", state.instance);
            match state.landing.create_durable(&name, bytes.clone()).await {
                Ok(true) => break,
                Ok(false) => continue,
                Err(e) => {
                    return reply(
                        StatusCode::SERVICE_UNAVAILABLE,
                        serde_json::json!({"error": format!("not landed, retry: {e}")}),
                    )
                }
            }
        }
    }
    let reported: Vec<serde_json::Value> = events
        .rejected
        .iter()
        .take(REPORTED_REJECTIONS)
        .map(|(i, reason)| serde_json::json!({"index": i, "reason": reason}))
        .collect();
    let caller = caller.map(|c| c.0 .0).unwrap_or_default();
    tracing::debug!(%caller, topic, accepted = events.accepted, rejected = events.rejected.len(), "request landed");
    let status = if events.rejected.is_empty() { StatusCode::ACCEPTED } else { StatusCode::BAD_REQUEST };
    reply(
        status,
        serde_json::json!({"accepted": events.accepted, "rejected_count": events.rejected.len(), "rejected": reported}),
    )
}

/// The TLS acceptor of `options`, if TLS is configured.
fn tls_acceptor(options: &ServeOptions) -> Result<Option<tokio_rustls::TlsAcceptor>> {
    let Some((cert, key)) = &options.tls else {
        if options.client_ca.is_some() {
            return Err(Error::Config("--client-ca needs TLS: give --tls-cert and --tls-key".into()));
        }
        return Ok(None);
    };
    let chain = crate::tls::certificates("--tls-cert", cert)?;
    let key = crate::tls::private_key("--tls-key", key)?;
    let provider = crate::tls::provider();
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Config(format!("TLS: {e}")))?;
    let builder = match &options.client_ca {
        Some(ca) => {
            let roots = crate::tls::roots("--client-ca", Some(ca), false)?;
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| Error::Config(format!("--client-ca {}: {e}", ca.display())))?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config =
        builder.with_single_cert(chain, key).map_err(|e| Error::Config(format!("--tls-cert/--tls-key: {e}")))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Some(tokio_rustls::TlsAcceptor::from(Arc::new(config))))
}

/// Serves until `stop` turns true, as `access`'s principal (which needs `WRITE FILES` on the
/// landing zone), then drains the requests in flight. Calls `ready` with the bound address once
/// listening. Refuses to start without a way to authenticate callers.
pub async fn serve(
    access: &Access,
    options: &ServeOptions,
    mut stop: watch::Receiver<bool>,
    ready: impl FnOnce(SocketAddr),
) -> Result<()> {
    let tokens = options.tokens.as_deref().map(TokenStore::open).transpose()?;
    if tokens.is_none() && options.client_ca.is_none() {
        return Err(Error::Config(
            "serve needs a way to authenticate devices: --tokens FILE (make one with `fitlake token new NAME`) or \
             --client-ca FILE with --tls-cert and --tls-key (mutual TLS)"
                .into(),
        ));
    }
    let acceptor = tls_acceptor(options)?;
    let landing = Folder::zone(access, Zone::Landing, &access.lakehouse.landing_url(KAFKA_MULTIPLEX))?;
    let listener = tokio::net::TcpListener::bind(options.listen)
        .await
        .map_err(|e| Error::Config(format!("--listen {}: {e}", options.listen)))?;
    let bound = listener.local_addr().map_err(|e| Error::Internal(e.into()))?;
    let state = Arc::new(AppState {
        landing,
        in_flight: Semaphore::new(options.max_in_flight.max(1)),
        max_records: options.max_records.max(1),
        next_offset: AtomicI64::new(chrono::Utc::now().timestamp_micros()),
        next_file: AtomicI64::new(0),
        instance: format!("{:x}{:x}", std::process::id(), chrono::Utc::now().timestamp_micros()),
        tokens,
    });
    let app = Router::new()
        .route("/v1/{topic}", post(ingest))
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), authenticate))
        .layer(DefaultBodyLimit::max(options.max_body_bytes))
        .layer(tower_http::timeout::RequestBodyTimeoutLayer::new(options.body_timeout))
        .with_state(state);
    let connections = Arc::new(Semaphore::new(options.max_connections.max(1)));
    let graceful = GracefulShutdown::new();
    ready(bound);
    loop {
        let permit = tokio::select! {
            permit = connections.clone().acquire_owned() => permit.map_err(|e| Error::Internal(e.into()))?,
            Ok(_) = stop.wait_for(|s| *s) => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(connection) => connection,
                Err(e) => {
                    // Out of file descriptors and the like: pause rather than spin.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            Ok(_) = stop.wait_for(|s| *s) => break,
        };
        let app = app.clone();
        let header_timeout = options.header_timeout;
        let acceptor = acceptor.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let _permit = permit;
            let Some(acceptor) = acceptor else {
                return serve_connection(stream, header_timeout, app, None, watcher, peer).await;
            };
            let tls = match tokio::time::timeout(header_timeout, acceptor.accept(stream)).await {
                Ok(Ok(tls)) => tls,
                Ok(Err(e)) => return tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                Err(_) => return tracing::debug!(%peer, "TLS handshake timed out"),
            };
            let caller = tls.get_ref().1.peer_certificates().and_then(|c| c.first()).map(|cert| {
                Caller(format!("client certificate sha256:{}", &crate::tokens::sha256_hex(cert.as_ref())[..16]))
            });
            serve_connection(tls, header_timeout, app, caller, watcher, peer).await;
        });
    }
    drop(listener);
    tracing::info!("stopped accepting; draining requests in flight");
    if tokio::time::timeout(options.drain_timeout, graceful.shutdown()).await.is_err() {
        tracing::warn!(seconds = options.drain_timeout.as_secs(), "requests still in flight after the drain timeout");
    }
    Ok(())
}

fn http1(header_timeout: Duration) -> hyper::server::conn::http1::Builder {
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder.timer(TokioTimer::new()).header_read_timeout(header_timeout);
    builder
}

/// The app for one connection, tagged with the connection's client certificate if any.
fn service(
    app: Router,
    caller: Option<Caller>,
) -> TowerToHyperService<
    tower::util::MapRequest<
        Router,
        impl FnMut(Request<hyper::body::Incoming>) -> Request<hyper::body::Incoming> + Clone,
    >,
> {
    TowerToHyperService::new(app.map_request(move |mut request: Request<hyper::body::Incoming>| {
        if let Some(caller) = &caller {
            request.extensions_mut().insert(caller.clone());
        }
        request
    }))
}

async fn serve_connection<I: AsyncRead + AsyncWrite + Unpin + Send + 'static>(
    io: I,
    header_timeout: Duration,
    app: Router,
    caller: Option<Caller>,
    watcher: hyper_util::server::graceful::Watcher,
    peer: SocketAddr,
) {
    let connection = http1(header_timeout).serve_connection(TokioIo::new(io), service(app, caller));
    if let Err(e) = watcher.watch(connection).await {
        tracing::debug!(%peer, error = %e, "connection ended");
    }
}
