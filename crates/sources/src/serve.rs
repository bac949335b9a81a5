//! `fitlake serve`: the HTTP API devices post events to.
//!
//! `POST /v1/bpm`, `/v1/workouts`, `/v1/profile` take one JSON object, a JSON array or NDJSON.
//! Each record is validated as its topic's value; the valid ones are wrapped in multiplex
//! envelopes and landed as one NDJSON file in the landing zone (written, flushed to disk and
//! renamed into place) before the answer: `202` when every record was accepted, `400` with the
//! index and reason of each bad record otherwise (the good ones are landed all the same).
//! Under overload the server sheds load instead of queueing without bound: more than
//! `max_in_flight` requests being landed at once get `503` with `Retry-After: 1`, and a body
//! over `max_body_bytes` gets `413`. Nothing answered 202 is lost; a client retries anything
//! else.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use fitlake_governance::policy::Zone;
use fitlake_landing::device_events::envelopes;
use fitlake_landing::sources::KAFKA_MULTIPLEX;
use fitlake_landing::topics;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use tokio::sync::{watch, Semaphore};

use fitlake_storage::{Access, Folder};

use crate::{Error, Result};

/// How the server runs.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Most requests being validated and landed at once; more get 503.
    pub max_in_flight: usize,
    /// Largest request body; larger get 413.
    pub max_body_bytes: usize,
}

struct State {
    landing: Folder,
    in_flight: Semaphore,
    max_body_bytes: usize,
    next_offset: AtomicI64,
    next_file: AtomicI64,
    /// This server process among others landing into the same zone: its pid and start time.
    instance: String,
}

fn topic_of(path: &str) -> Option<&'static str> {
    match path {
        "/v1/bpm" => Some(topics::BPM),
        "/v1/workouts" => Some(topics::WORKOUT),
        "/v1/profile" => Some(topics::USER_INFO),
        _ => None,
    }
}

fn reply(status: StatusCode, body: serde_json::Value) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(hyper::header::CONTENT_TYPE, hyper::header::HeaderValue::from_static("application/json"));
    if status == StatusCode::SERVICE_UNAVAILABLE {
        response.headers_mut().insert(hyper::header::RETRY_AFTER, hyper::header::HeaderValue::from_static("1"));
    }
    response
}

async fn handle(state: Arc<State>, request: Request<Incoming>) -> Response<Full<Bytes>> {
    let Some(topic) = topic_of(request.uri().path()) else {
        return reply(
            StatusCode::NOT_FOUND,
            serde_json::json!({"error": "POST to /v1/bpm, /v1/workouts or /v1/profile"}),
        );
    };
    if request.method() != Method::POST {
        return reply(StatusCode::METHOD_NOT_ALLOWED, serde_json::json!({"error": "use POST"}));
    }
    let Ok(_permit) = state.in_flight.try_acquire() else {
        return reply(StatusCode::SERVICE_UNAVAILABLE, serde_json::json!({"error": "overloaded; retry"}));
    };
    let body = match Limited::new(request.into_body(), state.max_body_bytes).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) => {
            let status = if e.is::<http_body_util::LengthLimitError>() {
                StatusCode::PAYLOAD_TOO_LARGE
            } else {
                StatusCode::BAD_REQUEST
            };
            return reply(status, serde_json::json!({"error": e.to_string()}));
        }
    };
    let Ok(text) = std::str::from_utf8(&body) else {
        return reply(StatusCode::BAD_REQUEST, serde_json::json!({"error": "the body is not UTF-8"}));
    };
    let received_ms = chrono::Utc::now().timestamp_millis();
    // A body has fewer records than bytes: reserving one offset per byte keeps offsets unique.
    let first_offset = state.next_offset.fetch_add(text.len() as i64 + 1, Ordering::Relaxed);
    let events = envelopes(topic, text, first_offset, received_ms);
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
    let rejected: Vec<serde_json::Value> =
        events.rejected.iter().map(|(i, reason)| serde_json::json!({"index": i, "reason": reason})).collect();
    let status = if rejected.is_empty() { StatusCode::ACCEPTED } else { StatusCode::BAD_REQUEST };
    reply(status, serde_json::json!({"accepted": events.accepted, "rejected": rejected}))
}

/// Serves until `stop` turns true, as `access`'s principal (which needs `WRITE FILES` on the
/// landing zone). Calls `ready` with the bound address once listening.
pub async fn serve(
    access: &Access,
    options: &ServeOptions,
    mut stop: watch::Receiver<bool>,
    ready: impl FnOnce(SocketAddr),
) -> Result<()> {
    let landing = Folder::zone(access, Zone::Landing, &access.lakehouse.landing_url(KAFKA_MULTIPLEX))?;
    let listener = tokio::net::TcpListener::bind(options.listen)
        .await
        .map_err(|e| Error::Config(format!("--listen {}: {e}", options.listen)))?;
    let bound = listener.local_addr().map_err(|e| Error::Internal(e.into()))?;
    let state = Arc::new(State {
        landing,
        in_flight: Semaphore::new(options.max_in_flight.max(1)),
        max_body_bytes: options.max_body_bytes,
        next_offset: AtomicI64::new(chrono::Utc::now().timestamp_micros()),
        next_file: AtomicI64::new(0),
        instance: format!("{:x}{:x}", std::process::id(), chrono::Utc::now().timestamp_micros()),
    });
    ready(bound);
    loop {
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(connection) => connection,
                Err(_) => continue,
            },
            Ok(_) = stop.wait_for(|s| *s) => return Ok(()),
        };
        let state = state.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                let state = state.clone();
                async move { Ok::<_, Infallible>(handle(state, request).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                .await;
        });
    }
}
