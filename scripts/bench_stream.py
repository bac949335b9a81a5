#!/usr/bin/env python3
"""Streaming benchmark: land one multiplex file per second at a fixed rate of BPM readings and
measure, from `fitlake run --stream --json`, the latency from a file landing to the end of the
micro-batch that carried its rows through bronze, silver and gold (workout_bpm_summary).

With --split, the layers run as two streams side by side, as the per-layer jobs do
(`run --stream --layer bronze` and `run --stream --layer silver --layer gold`): a file's latency
is then from its landing to the end of the first silver-and-gold micro-batch that started after
the bronze micro-batch carrying it ended (both streams' lines timed as they are printed).

Usage: scripts/bench_stream.py [--rate 50000] [--seconds 60] [--trigger 1s] [--auto-compact-files 50]
                               [--split] [--work /tmp/fitlake-bench-stream] [--fitlake BIN]
The lakehouse stays in WORK/lake (scripts/bench_maintenance.py measures it before and after
`fitlake optimize` and `fitlake vacuum`).
Needs a release build: cargo build --release --locked -p fitlake (the script runs it).
Numbers go to docs/BENCHMARKS.md.
"""
import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time

# The shipped policy maps every OS user to `developer`, who acts as the pipeline (and as the
# producer where a command says --principal producer).
os.environ.setdefault("FITLAKE_PRINCIPAL", "pipeline")

AVG_READINGS_PER_VISIT = 4900  # synthetic visits last 45 to 120 minutes, one reading per second


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rate", type=int, default=50_000, help="BPM readings landed per second")
    ap.add_argument("--seconds", type=int, default=60, help="how long files keep landing")
    ap.add_argument("--trigger", default="1s")
    ap.add_argument("--auto-compact-files", default="50", help="the stream's --auto-compact-files (0: off)")
    ap.add_argument("--split", action="store_true", help="bronze and silver+gold as two streams side by side")
    ap.add_argument("--work", default="/tmp/fitlake-bench-stream")
    ap.add_argument("--fitlake", help="a fitlake binary to use instead of building target/release/fitlake")
    args = ap.parse_args()

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(root, "target"))
    if args.fitlake:
        fitlake = os.path.abspath(args.fitlake)
    else:
        subprocess.run(["cargo", "build", "--release", "--locked", "-p", "fitlake"], cwd=root, check=True)
        fitlake = os.path.join(target, "release", "fitlake")

    users = max(1, args.rate * args.seconds // AVG_READINGS_PER_VISIT)
    staging = os.path.join(args.work, f"staging-{args.rate}-{args.seconds}")
    if not os.path.isdir(staging):
        subprocess.run([fitlake, "--lakehouse", staging, "--principal", "producer", "produce", "--generate", "--users", str(users), "--days", "1",
                        "--seed", "11", "--time-ordered", "--readings-per-file", str(args.rate), "--quiet"], check=True)
    raw = os.path.join(staging, "unmanaged", "data_zone", "raw")
    multiplex = sorted(os.listdir(os.path.join(raw, "kafka_multiplex_bz")))

    lake = os.path.join(args.work, "lake")
    shutil.rmtree(lake, ignore_errors=True)
    subprocess.run([fitlake, "--lakehouse", lake, "setup", "--quiet"], check=True, stdout=subprocess.DEVNULL)
    landing = os.path.join(lake, "unmanaged", "data_zone", "raw")

    def land(source, name):
        os.makedirs(os.path.join(landing, source), exist_ok=True)
        hidden = os.path.join(landing, source, "." + name)
        shutil.copyfile(os.path.join(raw, source, name), hidden)
        os.rename(hidden, os.path.join(landing, source, name))

    for source in ("registered_users_bz", "gym_logins_bz"):
        for name in os.listdir(os.path.join(raw, source)):
            land(source, name)
    groups = [["--layer", "bronze"], ["--layer", "silver", "--layer", "gold"]] if args.split else [[]]
    runners, lines = [], [[] for _ in groups]

    def follow(stream, into):
        # Each micro-batch's line with the moment it was printed (stdout is line-buffered).
        for line in stream:
            if line.startswith(b"{"):
                into.append((time.monotonic(), json.loads(line)))

    for layers, into in zip(groups, lines):
        runner = subprocess.Popen([fitlake, "--lakehouse", lake, "run", "--stream", "--trigger", args.trigger,
                                   "--as-of", "2023-03-15", "--auto-compact-files", args.auto_compact_files, "--json",
                                   *layers], stdout=subprocess.PIPE)
        threading.Thread(target=follow, args=(runner.stdout, into), daemon=True).start()
        runners.append(runner)
    started = time.monotonic()
    landed = []
    phase = random.Random(7)  # files land at random moments of their second, not in step with the trigger
    for i, name in enumerate(multiplex):
        time.sleep(max(0.0, started + i + phase.random() - time.monotonic()))
        land("kafka_multiplex_bz", name)
        landed.append(time.monotonic())
    landing_done = time.monotonic()
    while True:  # drain
        status = json.loads(subprocess.run([fitlake, "--lakehouse", lake, "status", "--json"], check=True,
                                           capture_output=True).stdout)
        if all((t["landing"] is None or t["landing"]["files"] == 0) and all(s["behind"] == 0 for s in t["sources"])
               for t in status):
            break
        time.sleep(0.5)
    drained = time.monotonic()
    codes = []
    for runner in runners:
        runner.send_signal(signal.SIGTERM)
        codes.append(runner.wait())
    code = max(codes)
    time.sleep(0.2)  # the last lines
    for i, into in enumerate(lines):  # each stream's micro-batches, for a closer look
        with open(os.path.join(args.work, f"stream{i if args.split else ''}.jsonl"), "w") as out:
            out.writelines(json.dumps(b) + "\n" for _, b in into)
    if args.split:
        # Bronze takes the multiplex files in landing order, after the CSV files landed first.
        csv_files = sum(len(os.listdir(os.path.join(raw, s))) for s in ("registered_users_bz", "gym_logins_bz"))
        took = [at for at, b in lines[0] for _ in b["landing_latencies"]][csv_files:]
        gold = [(at - b["report"]["seconds"], at) for at, b in lines[1]]
        latencies = sorted(next((end for start, end in gold if start >= bronze_end), drained) - at
                           for at, bronze_end in zip(landed, took))
        bronze_busy = [b["report"]["seconds"] for _, b in lines[0] if b["landing_latencies"]]
        print(f"bronze micro-batches with data: {len(bronze_busy)}, mean "
              f"{sum(bronze_busy) / max(1, len(bronze_busy)):.2f} s, max {max(bronze_busy, default=0):.2f} s")
    else:
        latencies = sorted(l for _, b in lines[0] for l in b["landing_latencies"])
    batches = [b for _, b in lines[-1]]
    readings = sum(s["rows_read"] for b in batches for s in b["report"]["steps"] if s["table"] == "silver.heart_rate")
    pct = lambda p: latencies[min(len(latencies) - 1, int(p * len(latencies)))] if latencies else float("nan")
    carried = lambda b: any(s["rows_read"] for s in b["report"]["steps"]) if args.split else b["landing_latencies"]
    busy = [b["report"]["seconds"] for b in batches if carried(b)]
    print(f"rate {args.rate}/s for {len(multiplex)} files ({readings} BPM readings, {users} users), trigger {args.trigger}")
    print(f"latency landing -> workout_bpm_summary: p50 {pct(0.50):.2f} s  p99 {pct(0.99):.2f} s  max {latencies[-1]:.2f} s")
    quarter = max(1, len(busy) // 4)
    print(f"micro-batch seconds, first quarter mean {sum(busy[:quarter]) / quarter:.2f} s, "
          f"last quarter mean {sum(busy[-quarter:]) / quarter:.2f} s (growth means state is not bounded)")
    print(f"micro-batches with data: {len(busy)}, mean {sum(busy) / max(1, len(busy)):.2f} s, max {max(busy):.2f} s; "
          f"max pending files {max(b['backlog']['files'] for _, b in lines[0])}; "
          f"drained {drained - landing_done:.1f} s after the last file landed; exit code {code}")
    return 0 if code == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
