#!/usr/bin/env python3
"""Issue 13's measurement: a lakehouse's files per table, the time of an idle gold run, of a full
read and of a `fitlake sql` query, before and after `fitlake optimize`; storage bytes before and after `fitlake vacuum`.

Usage: scripts/bench_maintenance.py FITLAKE LAKE [--retain 0h]
LAKE is typically the one scripts/bench_stream.py leaves in WORK/lake after streaming with
--auto-compact-files 0. Each timing is the best of three, taken back to back.
Numbers go to docs/BENCHMARKS.md.
"""
import argparse
import os
import subprocess
import time

# The shipped policy maps every OS user to `developer`, who acts as the pipeline (and as the
# producer where a command says --principal producer).
os.environ.setdefault("FITLAKE_PRINCIPAL", "pipeline")


def files_and_bytes(lake):
    """Per table folder: parquet files on disk (active or not) and their bytes."""
    out = {}
    managed = os.path.join(lake, "managed")
    for layer in sorted(os.listdir(managed)):
        if not os.path.isdir(os.path.join(managed, layer)):
            continue
        for table in sorted(os.listdir(os.path.join(managed, layer))):
            root = os.path.join(managed, layer, table)
            if not os.path.isdir(os.path.join(root, "_delta_log")):
                continue
            n, size = 0, 0
            for d, _, names in os.walk(root):
                if "_delta_log" in d:
                    continue
                for name in names:
                    if name.endswith(".parquet"):
                        n += 1
                        size += os.path.getsize(os.path.join(d, name))
            out[f"{layer}.{table}"] = (n, size)
    return out


def best_of(args, n=3):
    best = None
    for _ in range(n):
        started = time.monotonic()
        subprocess.run(args, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        took = time.monotonic() - started
        best = took if best is None else min(best, took)
    return best


# A dashboard-style query over the largest table: it reads two columns of every heart_rate file.
SQL = ("SELECT device_id, CAST(time AS DATE) AS day, AVG(heartrate) AS bpm, COUNT(*) AS readings "
       "FROM silver.heart_rate WHERE valid GROUP BY device_id, day ORDER BY device_id, day")


def measure(fitlake, lake, label):
    gold = best_of([fitlake, "--lakehouse", lake, "run", "--once", "--layer", "gold", "--as-of", "2023-03-15", "--quiet"])
    query = best_of([fitlake, "--lakehouse", lake, "show", "heart_rate", "--limit", "5"])
    sql = best_of([fitlake, "--lakehouse", lake, "sql", SQL])
    disk = files_and_bytes(lake)
    print(f"{label}: idle gold run {gold:.2f} s, `show heart_rate` (full read + sort) {query:.2f} s, "
          f"`fitlake sql` (bpm per device and day over heart_rate) {sql:.2f} s")
    for table, (n, size) in disk.items():
        print(f"  {table}: {n} parquet files on disk, {size / 2**20:.1f} MiB")
    return disk


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("fitlake")
    ap.add_argument("lake")
    ap.add_argument("--retain", default="0h")
    args = ap.parse_args()
    measure(args.fitlake, args.lake, "before optimize")
    started = time.monotonic()
    out = subprocess.run([args.fitlake, "--lakehouse", args.lake, "optimize"], check=True, capture_output=True, text=True)
    print(f"optimize: {time.monotonic() - started:.1f} s; {out.stdout.strip().splitlines()[-1]}")
    before = measure(args.fitlake, args.lake, "after optimize")
    started = time.monotonic()
    out = subprocess.run([args.fitlake, "--lakehouse", args.lake, "vacuum", "--retain", args.retain, "--force"],
                         check=True, capture_output=True, text=True)
    print(f"vacuum --retain {args.retain} --force: {time.monotonic() - started:.1f} s; {out.stdout.strip().splitlines()[-1]}")
    after = files_and_bytes(args.lake)
    total = lambda d: sum(s for _, s in d.values())
    print(f"storage: {total(before) / 2**20:.1f} MiB before vacuum, {total(after) / 2**20:.1f} MiB after")


if __name__ == "__main__":
    main()
