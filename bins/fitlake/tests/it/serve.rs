//! The HTTP API with a real client (curl): validation per record, overload answers, and a load
//! of 100,000 events that all reach bronze exactly once.

use std::io::Write as _;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use polars::prelude::*;

use crate::harness::{wait_until, Lake, AS_OF};

/// POSTs the file `body` to `url` with curl; returns the HTTP status and the response body.
fn post(url: &str, body: &Path, extra: &[&str]) -> (u16, String) {
    let out = Command::new("curl")
        .args(["-s", "-S", "-X", "POST", "-H", "Content-Type: application/x-ndjson", "--data-binary"])
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
fn http_events_are_validated_landed_and_reach_bronze_exactly_once() {
    let lake = Lake::new();
    lake.fitlake(&["setup"]);
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
        ],
        &[],
    );
    wait_until("the server listens", Duration::from_secs(30), || std::net::TcpStream::connect(&listen).is_ok());
    let url = |path: &str| format!("http://{listen}{path}");
    let dir = tempfile::tempdir().expect("dir");

    // Good and bad records in one request: 400 naming each bad one, the good ones kept.
    let mixed = dir.path().join("mixed.ndjson");
    write(
        &mixed,
        "{\"device_id\": 1, \"time\": 1678886400.5, \"heartrate\": 70.5}\n{\"device_id\": 1, \"time\": \"soon\", \"heartrate\": 70}\n{\"device_id\": 2, \"time\": 1678886400, \"heartrate\": 0}\n",
    );
    let (code, body) = post(&url("/v1/bpm"), &mixed, &[]);
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("\"accepted\":2") && body.contains("\"index\":1") && body.contains("time"), "{body}");
    let (code, _) = post(&url("/v1/nope"), &mixed, &[]);
    assert_eq!(code, 404);

    // Too big: 413. Overloaded (the only slot held by a slow upload): 503 with Retry-After.
    let big = dir.path().join("big.ndjson");
    write(&big, &"{\"device_id\": 3, \"time\": 1678886400, \"heartrate\": 70}\n".repeat(30_000));
    assert_eq!(post(&url("/v1/bpm"), &big, &[]).0, 413);
    let slow_server_port = crate::harness::free_port();
    let slow_listen = format!("127.0.0.1:{slow_server_port}");
    let slow_server = lake.spawn(
        env!("CARGO_BIN_EXE_fitlake"),
        &["--principal", "producer", "serve", "--listen", &slow_listen, "--max-in-flight", "1"],
        &[],
    );
    wait_until("the second server listens", Duration::from_secs(30), || {
        std::net::TcpStream::connect(&slow_listen).is_ok()
    });
    let slow_body = dir.path().join("slow.ndjson");
    write(&slow_body, &"{\"device_id\": 4, \"time\": 1678886400, \"heartrate\": 70}\n".repeat(400));
    let slow_url = format!("http://{slow_listen}/v1/bpm");
    let mut slow = Command::new("curl")
        .args(["-s", "-o", "/dev/null", "--limit-rate", "4K", "-X", "POST", "--data-binary"])
        .arg(format!("@{}", slow_body.display()))
        .arg(&slow_url)
        .spawn()
        .expect("curl");
    std::thread::sleep(Duration::from_millis(700));
    let (code, body) = post(&slow_url, &mixed, &["-D", "-"]);
    assert_eq!(code, 503, "{body}");
    assert!(body.to_ascii_lowercase().contains("retry-after: 1"), "{body}");
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
                        match post(&url, file, &[]) {
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
    assert_eq!(bpm.height(), 100_000 + 2, "every accepted event in bronze");
    let distinct = bpm.unique::<(), ()>(None, UniqueKeepStrategy::First, None).expect("unique").height();
    assert_eq!(distinct, 100_002, "no event twice");
}
