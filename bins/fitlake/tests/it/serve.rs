//! The HTTP API with a real client (curl): authentication by bearer token (revocable without a
//! restart) or client certificate, TLS, validation per record, limits and timeouts that a slow
//! or hostile client cannot get round, and a load of 100,000 events that all reach bronze
//! exactly once.

use std::io::Write as _;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use polars::prelude::*;

use crate::harness::{wait_until, Lake, TestCa, AS_OF};

fn curl_tls(url: &str, body: &Path, args: &[&str]) -> (i32, String) {
    let out = Command::new("curl")
        .args(["-s", "-S", "-X", "POST", "-H", "Content-Type: application/x-ndjson", "--data-binary"])
        .arg(format!("@{}", body.display()))
        .args(args)
        .args(["-w", "\n%{http_code}", url])
        .output()
        .expect("curl");
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A bearer token named `name` made with `fitlake token new` in the token file `tokens`.
fn new_token(lake: &Lake, tokens: &Path, name: &str) -> String {
    let out = lake.fitlake(&["token", "new", name, "--tokens", tokens.to_str().expect("utf-8")]);
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// POSTs the file `body` to `url` with curl; returns the HTTP status and the response body.
fn post(url: &str, body: &Path, extra: &[&str]) -> (u16, String) {
    let typed = extra.iter().any(|h| h.to_ascii_lowercase().starts_with("content-type:"));
    let content_type = if typed { &[][..] } else { &["-H", "Content-Type: application/x-ndjson"][..] };
    let out = Command::new("curl")
        .args(["-s", "-S", "-X", "POST"])
        .args(content_type)
        .arg("--data-binary")
        .arg(format!("@{}", body.display()))
        .args(extra)
        .args(["-w", "\n%{http_code}", url])
        .output()
        .expect("curl (a real HTTP client; Debian package curl)");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (response, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (code.trim().parse().unwrap_or(0), response.to_string())
}

fn write(path: &Path, text: &str) {
    std::fs::File::create(path).and_then(|mut f| f.write_all(text.as_bytes())).expect("write body");
}

#[test]
fn http_events_are_authenticated_validated_landed_and_reach_bronze_exactly_once() {
    let lake = Lake::new();
    lake.fitlake(&["setup"]);
    let dir = tempfile::tempdir().expect("dir");
    let tokens = dir.path().join("tokens.json");

    // Without a way to authenticate devices the server does not start.
    let out = lake.fitlake_env(&["--principal", "producer", "serve", "--listen", "127.0.0.1:0"], &[]);
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--tokens"));
    let token = new_token(&lake, &tokens, "device-fleet");
    assert!(token.starts_with("flk_"), "{token}");
    assert!(!std::fs::read_to_string(&tokens).expect("token file").contains(&token), "only the hash is stored");
    let auth = format!("Authorization: Bearer {token}");
    let with_token = ["-H", auth.as_str()];

    let port = crate::harness::free_port();
    let listen = format!("127.0.0.1:{port}");
    let server = lake.spawn(
        env!("CARGO_BIN_EXE_fitlake"),
        &[
            "--principal",
            "producer",
            "serve",
            "--listen",
            &listen,
            "--max-in-flight",
            "4",
            "--max-body-bytes",
            "1000000",
            "--max-records",
            "1000",
            "--header-timeout",
            "1s",
            "--tokens",
            tokens.to_str().expect("utf-8"),
        ],
        &[],
    );
    wait_until("the server listens", Duration::from_secs(30), || std::net::TcpStream::connect(&listen).is_ok());
    let url = |path: &str| format!("http://{listen}{path}");

    // Good and bad records in one request: 400 naming each bad one, the good ones kept.
    let mixed = dir.path().join("mixed.ndjson");
    write(
        &mixed,
        "{\"device_id\": 1, \"time\": 1678886400.5, \"heartrate\": 70.5}\n{\"device_id\": 1, \"time\": \"soon\", \"heartrate\": 70}\n{\"device_id\": 2, \"time\": 1678886400, \"heartrate\": 0}\n",
    );
    // No token, or one that is not in the file: 401, nothing landed.
    assert_eq!(post(&url("/v1/bpm"), &mixed, &[]).0, 401);
    assert_eq!(post(&url("/v1/bpm"), &mixed, &["-H", "Authorization: Bearer flk_0123"]).0, 401);
    let (code, body) = post(&url("/v1/bpm"), &mixed, &with_token);
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("\"accepted\":2") && body.contains("\"index\":1") && body.contains("time"), "{body}");
    let (code, _) = post(&url("/v1/nope"), &mixed, &with_token);
    assert_eq!(code, 404);
    // Not JSON or NDJSON: 415.
    assert_eq!(post(&url("/v1/bpm"), &mixed, &[&with_token[..], &["-H", "Content-Type: text/plain"]].concat()).0, 415);
    // A body of many bad records: the first 20 reasons and a count, not one object each.
    let ones = dir.path().join("ones.json");
    write(&ones, &format!("[{}1]", "1,".repeat(999)));
    let (code, body) = post(&url("/v1/bpm"), &ones, &with_token);
    assert_eq!(code, 400, "{body}");
    let report: serde_json::Value = serde_json::from_str(&body).expect("JSON answer");
    assert_eq!(
        (report["rejected_count"].as_u64(), report["rejected"].as_array().map(Vec::len)),
        (Some(1000), Some(20))
    );
    // More records than --max-records: 413, refused whole.
    write(&ones, &format!("[{}1]", "1,".repeat(1000)));
    let (code, body) = post(&url("/v1/bpm"), &ones, &with_token);
    assert_eq!(code, 413, "{body}");
    assert!(body.contains("more than 1000 records"), "{body}");

    // A connection that never finishes its headers is closed after the header timeout.
    {
        use std::io::Read as _;
        let mut loris = std::net::TcpStream::connect(&listen).expect("connect");
        loris.write_all(b"POST /v1/bpm HTTP/1.1\r\nHost: x\r\n").expect("partial headers");
        loris.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
        let started = std::time::Instant::now();
        let mut buf = [0u8; 512];
        let read = loris.read(&mut buf);
        assert!(read.is_ok_and(|n| n == 0 || buf[..n].starts_with(b"HTTP/1.1 408")), "closed by the server");
        assert!(
            started.elapsed() < Duration::from_secs(4),
            "after about the 1 s header timeout: {:?}",
            started.elapsed()
        );
    }

    // Too big: 413. Overloaded (the only slot held by a slow upload): 503 with Retry-After.
    let big = dir.path().join("big.ndjson");
    write(&big, &"{\"device_id\": 3, \"time\": 1678886400, \"heartrate\": 70}\n".repeat(30_000));
    assert_eq!(post(&url("/v1/bpm"), &big, &with_token).0, 413);
    let slow_server_port = crate::harness::free_port();
    let slow_listen = format!("127.0.0.1:{slow_server_port}");
    let slow_server = lake.spawn(
        env!("CARGO_BIN_EXE_fitlake"),
        &[
            "--principal",
            "producer",
            "serve",
            "--listen",
            &slow_listen,
            "--max-in-flight",
            "1",
            "--tokens",
            tokens.to_str().expect("utf-8"),
        ],
        &[],
    );
    wait_until("the second server listens", Duration::from_secs(30), || {
        std::net::TcpStream::connect(&slow_listen).is_ok()
    });
    let slow_body = dir.path().join("slow.ndjson");
    write(&slow_body, &"{\"device_id\": 4, \"time\": 1678886400, \"heartrate\": 70}\n".repeat(400));
    let slow_url = format!("http://{slow_listen}/v1/bpm");
    // A slow upload does not hold the only landing slot: it is taken once a body has arrived.
    let mut slow = Command::new("curl")
        .args(["-s", "-o", "/dev/null", "--limit-rate", "4K", "-X", "POST", "--data-binary"])
        .arg(format!("@{}", slow_body.display()))
        .args(["-H", "Content-Type: application/x-ndjson", "-H", auth.as_str()])
        .arg(&slow_url)
        .spawn()
        .expect("curl");
    std::thread::sleep(Duration::from_millis(700));
    let one = dir.path().join("one.ndjson");
    write(&one, "{\"device_id\": 3, \"time\": 1678886401, \"heartrate\": 71}\n");
    let (code, body) = post(&slow_url, &one, &with_token);
    assert_eq!(code, 202, "answered while the slow upload goes on: {body}");
    let _ = slow.kill();
    let _ = slow.wait();
    assert!(slow_server.terminate().status.success());

    // Load: 100 requests of 1,000 readings from 8 concurrent clients, retried on 503.
    let files: Vec<_> = (0..100)
        .map(|r| {
            let path = dir.path().join(format!("load-{r}.ndjson"));
            let text: String = (0..1000)
                .map(|i| {
                    format!("{{\"device_id\": {}, \"time\": {}, \"heartrate\": 72.5}}\n", 10_000 + r, 1_678_900_000 + i)
                })
                .collect();
            write(&path, &text);
            path
        })
        .collect();
    let overloaded = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for client in 0..8 {
            let (files, url, overloaded) = (&files, url("/v1/bpm"), &overloaded);
            scope.spawn(move || {
                for file in files.iter().skip(client).step_by(8) {
                    loop {
                        match post(&url, file, &with_token) {
                            (202, body) => {
                                assert!(body.contains("\"accepted\":1000"), "{body}");
                                break;
                            }
                            (503, _) => {
                                overloaded.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                                std::thread::sleep(Duration::from_millis(20));
                            }
                            (code, body) => panic!("unexpected {code}: {body}"),
                        }
                    }
                }
            });
        }
    });
    eprintln!("load test: {} answers were 503 and retried", overloaded.into_inner());

    // Revoked: refused within a couple of seconds, without a restart.
    lake.fitlake(&["token", "revoke", "device-fleet", "--tokens", tokens.to_str().expect("utf-8")]);
    let invalid = dir.path().join("invalid.ndjson");
    write(&invalid, "{\"device_id\": 1}\n"); // lands nothing while the token still works
    wait_until("the revoked token is refused", Duration::from_secs(10), || {
        post(&url("/v1/bpm"), &invalid, &with_token).0 == 401
    });
    let ended = server.terminate();
    assert!(ended.status.success(), "{}", ended.stderr);

    lake.fitlake(&["run", "--once", "--layer", "bronze", "--as-of", AS_OF]);
    let bpm = lake
        .table("kafka_multiplex_bz")
        .lazy()
        .filter(col("topic").eq(lit("bpm")))
        .select([col("key"), col("value")])
        .collect()
        .expect("bpm rows");
    assert_eq!(bpm.height(), 100_000 + 2 + 1, "every accepted event in bronze");
    let distinct = bpm.unique::<(), ()>(None, UniqueKeepStrategy::First, None).expect("unique").height();
    assert_eq!(distinct, 100_003, "no event twice");
}

#[test]
fn tls_with_a_token_and_mutual_tls_with_a_client_certificate() {
    let lake = Lake::new();
    lake.fitlake(&["setup"]);
    let dir = tempfile::tempdir().expect("dir");
    let ca = TestCa::new(dir.path());
    let (server_cert, server_key) = ca.issue("server", false);
    let (client_cert, client_key) = ca.issue("gateway-7", true);
    let tokens = dir.path().join("tokens.json");
    let token = new_token(&lake, &tokens, "tls-fleet");
    let auth = format!("Authorization: Bearer {token}");
    let body = dir.path().join("one.ndjson");
    write(&body, "{\"device_id\": 9, \"time\": 1678886400, \"heartrate\": 80}\n");
    let path = |p: &std::path::PathBuf| p.to_str().expect("utf-8").to_string();
    let start = |extra: &[String]| {
        let listen = format!("127.0.0.1:{}", crate::harness::free_port());
        let mut args: Vec<String> = ["--principal", "producer", "serve", "--listen", &listen, "--tls-cert"]
            .iter()
            .map(|s| s.to_string())
            .chain([path(&server_cert), "--tls-key".into(), path(&server_key)])
            .collect();
        args.extend_from_slice(extra);
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let server = lake.spawn(env!("CARGO_BIN_EXE_fitlake"), &refs, &[]);
        wait_until("the server listens", Duration::from_secs(30), || std::net::TcpStream::connect(&listen).is_ok());
        (server, listen)
    };

    // TLS with tokens: the CA verifies the server; plain HTTP to it fails.
    let (server, listen) = start(&["--tokens".into(), path(&tokens)]);
    let url = format!("https://{listen}/v1/bpm");
    let (code, out) = curl_tls(&url, &body, &["--cacert", &path(&ca.cert()), "-H", &auth]);
    assert!(code == 0 && out.ends_with("202"), "{code}: {out}");
    let (code, out) = curl_tls(&url, &body, &["--cacert", &path(&ca.cert())]);
    assert!(code == 0 && out.ends_with("401"), "no token over TLS: {code}: {out}");
    let (code, _) = curl_tls(&format!("http://{listen}/v1/bpm"), &body, &["-H", &auth, "--max-time", "5"]);
    assert_ne!(code, 0, "plain HTTP to a TLS port is no request");
    assert!(server.terminate().status.success());

    // Mutual TLS: a client certificate of the CA is enough; without one the handshake fails.
    let (server, listen) = start(&["--client-ca".into(), path(&ca.cert())]);
    let url = format!("https://{listen}/v1/bpm");
    let cert_args = ["--cacert", &path(&ca.cert()), "--cert", &path(&client_cert), "--key", &path(&client_key)];
    let (code, out) =
        curl_tls(&url, &body, &cert_args.map(|s| s.to_string()).iter().map(String::as_str).collect::<Vec<_>>());
    assert!(code == 0 && out.ends_with("202"), "{code}: {out}");
    let (code, _) = curl_tls(&url, &body, &["--cacert", &path(&ca.cert()), "-H", &auth]);
    assert_ne!(code, 0, "no client certificate: no connection");
    assert!(server.terminate().status.success());

    lake.fitlake(&["run", "--once", "--layer", "bronze", "--as-of", AS_OF]);
    assert_eq!(lake.counts()["kafka_multiplex_bz"], 2, "the two accepted requests, once each");
}
