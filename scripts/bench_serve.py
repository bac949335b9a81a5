#!/usr/bin/env python3
"""Load test of `fitlake serve` (issue 14): EVENTS bpm readings posted by CLIENTS concurrent
clients (NDJSON bodies of BATCH readings, bearer token, keep-alive, retried on 503) while LORIS
slow-loris connections are held open (headers sent a line every 2 s and never finished). Then
bronze ingests the landed files and every accepted event must be there exactly once.

Usage: scripts/bench_serve.py FITLAKE [--events 1000000] [--clients 16] [--batch 1000] [--loris 200]
                              [--header-timeout 5s] [--work /tmp/fitlake-bench-serve]
Prints request latency p50/p99, events/s, how the slow connections ended, and the bronze check.
Numbers go to docs/BENCHMARKS.md. Only loopback addresses are used.
"""
import argparse
import http.client
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time

# The shipped policy maps every OS user to `developer`, who acts as the pipeline (and as the
# producer where a command says --principal producer).
os.environ.setdefault("FITLAKE_PRINCIPAL", "pipeline")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("fitlake")
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--batch", type=int, default=1000)
    ap.add_argument("--loris", type=int, default=200)
    ap.add_argument("--header-timeout", default="5s")
    ap.add_argument("--work", default="/tmp/fitlake-bench-serve")
    args = ap.parse_args()

    shutil.rmtree(args.work, ignore_errors=True)
    os.makedirs(args.work)
    lake = os.path.join(args.work, "lake")
    tokens = os.path.join(args.work, "tokens.json")
    run = lambda *a, **k: subprocess.run([args.fitlake, "--lakehouse", lake, *a], check=True, **k)
    run("setup", "--quiet", stdout=subprocess.DEVNULL)
    token = run("token", "new", "bench", "--tokens", tokens, capture_output=True, text=True).stdout.strip()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen([args.fitlake, "--lakehouse", lake, "--principal", "producer", "--quiet", "serve",
                               "--listen", f"127.0.0.1:{port}", "--tokens", tokens,
                               "--header-timeout", args.header_timeout],
                              stdout=subprocess.DEVNULL, stderr=open(os.path.join(args.work, "serve.err"), "w"))
    for _ in range(300):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.1)

    # Slow loris: headers begun and trickled, never finished.
    loris_closed_at = []
    stop_loris = threading.Event()
    loris_started = time.monotonic()

    def loris(i):
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(b"POST /v1/bpm HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        s.settimeout(2.0)
        n = 0
        while not stop_loris.is_set():
            try:
                if s.recv(1024) == b"":
                    loris_closed_at.append(time.monotonic() - loris_started)
                    return
            except socket.timeout:
                pass
            except OSError:
                loris_closed_at.append(time.monotonic() - loris_started)
                return
            try:
                s.sendall(f"X-Slow-{i}-{n}: 1\r\n".encode())
                n += 1
            except OSError:
                loris_closed_at.append(time.monotonic() - loris_started)
                return
        s.close()

    loris_threads = [threading.Thread(target=loris, args=(i,), daemon=True) for i in range(args.loris)]
    for t in loris_threads:
        t.start()

    requests = args.events // args.batch
    latencies, accepted, retried = [], [0], [0]
    lock = threading.Lock()

    def client(c):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        headers = {"Content-Type": "application/x-ndjson", "Authorization": f"Bearer {token}"}
        for r in range(c, requests, args.clients):
            body = "".join(f'{{"device_id": {100000 + r}, "time": {1678900000 + i}, "heartrate": 72.5}}\n'
                           for i in range(args.batch)).encode()
            while True:
                started = time.monotonic()
                try:
                    conn.request("POST", "/v1/bpm", body=body, headers=headers)
                    response = conn.getresponse()
                    answer = response.read()
                except (http.client.HTTPException, OSError):
                    conn.close()
                    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
                    continue
                took = time.monotonic() - started
                if response.status == 503:
                    with lock:
                        retried[0] += 1
                    time.sleep(0.02)
                    continue
                if response.status != 202:
                    print(f"unexpected {response.status}: {answer[:200]}", file=sys.stderr)
                    sys.exit(1)
                with lock:
                    latencies.append(took)
                    accepted[0] += json.loads(answer)["accepted"]
                break

    load_started = time.monotonic()
    threads = [threading.Thread(target=client, args=(c,)) for c in range(args.clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    load_seconds = time.monotonic() - load_started
    # Give the slow connections the header timeout and a margin before counting them.
    timeout = float(args.header_timeout.rstrip("s"))
    while len(loris_closed_at) < args.loris and time.monotonic() < loris_started + timeout + 5:
        time.sleep(0.2)
    stop_loris.set()
    server.terminate()
    server.wait()

    started = time.monotonic()
    run("run", "--once", "--layer", "bronze", "--as-of", "2023-03-15", "--quiet", stdout=subprocess.DEVNULL)
    ingest = time.monotonic() - started
    out = run("sql", "--format", "json",
              "SELECT COUNT(*) AS n, COUNT(DISTINCT value) AS distinct_values FROM bronze.kafka_multiplex_bz",
              capture_output=True, text=True).stdout
    counts = json.loads(out)[0]
    latencies.sort()
    pct = lambda p: latencies[min(len(latencies) - 1, int(p * len(latencies)))]
    print(f"{accepted[0]} events accepted in {len(latencies)} requests from {args.clients} clients in "
          f"{load_seconds:.1f} s ({accepted[0] / load_seconds:,.0f} events/s); {retried[0]} answers 503, retried")
    print(f"request latency p50 {pct(0.5) * 1000:.1f} ms, p99 {pct(0.99) * 1000:.1f} ms, max {latencies[-1] * 1000:.1f} ms")
    closed = sorted(loris_closed_at)
    print(f"slow-loris connections: {len(closed)} of {args.loris} closed by the server "
          f"(after {closed[0]:.1f}-{closed[-1]:.1f} s)" if closed else f"slow-loris: none of {args.loris} closed")
    ok = counts["n"] == accepted[0] and counts["distinct_values"] == accepted[0]
    print(f"bronze: {counts['n']} rows, {counts['distinct_values']} distinct, ingested in {ingest:.1f} s: "
          f"{'every accepted event exactly once' if ok else 'MISMATCH'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
