#!/usr/bin/env python3
"""Landing data shaped unlike `fitlake produce --generate`, for benchmarks (issue 12).

`fitlake produce --generate` writes one file per million readings, device after device, with
visits of 45-120 minutes of which about half is exercise. Real gym data is often otherwise; this
script writes the other shape, independently of the Rust generator:

- long visits dense with exercise: every visit lasts about `--visit-seconds` (default 10,000 s),
  three workout sessions cover about 90 % of it, one reading per second with millisecond
  jitter, so nearly every reading falls in a session;
- one Kafka dump: every topic interleaved in Kafka-timestamp order (milliseconds), four
  partitions with their own offsets, envelope keys in another order than fitlake writes them;
- a few large files of unequal size (`--files`, default 4: 20, 25, 25 and 30 % of the lines,
  170-250 MB for 5 M readings);
- redelivered duplicates (0.3 % of readings, same payload, a later offset), late readings
  (0.1 %, moved to the last file), invalid heartrates (0.2 % are 0);
- profiles: a `new` per user, an `update` for one in five.

Usage: gen_landing.py OUT [--users 250] [--days 2] [--seed 11]
Writes OUT/raw/{registered_users_bz,gym_logins_bz,kafka_multiplex_bz}/, the layout of a
lakehouse's `unmanaged/data_zone`. Needs polars and numpy (the peer's venv).
"""
import argparse
import datetime as dt
import os

import numpy as np
import polars as pl

CITIES = [("Austin", "TX"), ("Dallas", "TX"), ("Houston", "TX"), ("El Paso", "TX"), ("Plano", "TX")]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("out")
    p.add_argument("--users", type=int, default=250)
    p.add_argument("--days", type=int, default=2)
    p.add_argument("--seed", type=int, default=11)
    p.add_argument("--visit-seconds", type=int, default=10_000)
    p.add_argument("--files", type=int, default=4)
    a = p.parse_args()
    rng = np.random.default_rng(a.seed)
    day0 = int(dt.datetime(2023, 3, 13, tzinfo=dt.timezone.utc).timestamp())
    raw = os.path.join(a.out, "raw")
    for d in ("registered_users_bz", "gym_logins_bz", "kafka_multiplex_bz"):
        os.makedirs(os.path.join(raw, d), exist_ok=True)

    n = a.users
    user_id = np.arange(n, dtype=np.int64) + 200_000
    device_id = np.arange(n, dtype=np.int64) + 700_000
    mac_bytes = rng.integers(0, 256, size=(n, 6))
    mac = [":".join(f"{b:02x}" for b in row) for row in mac_bytes]
    registered = day0 + rng.integers(0, 5 * 3600, size=n)
    pl.DataFrame(
        {"user_id": user_id, "device_id": device_id, "mac_address": mac, "registration_timestamp": registered}
    ).write_csv(os.path.join(raw, "registered_users_bz", "dense-registered_users.csv"))

    # Visits: one per user and day.
    v_user = np.tile(np.arange(n), a.days)
    v_day = np.repeat(np.arange(a.days), n)
    length = (a.visit_seconds * rng.uniform(0.9, 1.1, size=n * a.days)).astype(np.int64)
    login = day0 + v_day * 86_400 + 5 * 3600 + rng.integers(0, 12 * 3600, size=n * a.days)
    logout = login + length
    gym = rng.integers(1, 9, size=n * a.days)
    pl.DataFrame(
        {"mac_address": [mac[u] for u in v_user], "gym": gym, "login": login, "logout": logout}
    ).write_csv(os.path.join(raw, "gym_logins_bz", "dense-gym_logins.csv"))

    # Workout events: three sessions per visit, each 30 % of it, 60 s apart.
    events = []
    for i in range(n * a.days):
        u = v_user[i]
        third = length[i] // 3
        for s in range(3):
            start = login[i] + 30 + s * third
            stop = start + third - 60
            for action, at in (("start", start), ("stop", stop)):
                value = (
                    f'{{"user_id": {user_id[u]}, "workout_id": {v_day[i] * 10 + 1}, "timestamp": {at}, '
                    f'"action": "{action}", "session_id": {s + 1}}}'
                )
                events.append(("workout", int(user_id[u]), value, at * 1000))
    for u in range(n):
        city, state = CITIES[u % len(CITIES)]
        dob = f"{1 + u % 12:02}/{1 + u % 28:02}/{1945 + (u * 7) % 60}"
        for kind, at, c in (("new", registered[u] + 60, city), ("update", registered[u] + 3600, CITIES[(u + 1) % 5][0])):
            if kind == "update" and u % 5:
                continue
            value = (
                f'{{"user_id": {user_id[u]}, "update_type": "{kind}", "timestamp": {at}, "dob": "{dob}", '
                f'"sex": "{"MF"[u % 2]}", "gender": "{"MF"[u % 2]}", "first_name": "N{u}", "last_name": "L{u}", '
                f'"address": {{"street_address": "{u} Oak Ave", "city": "{c}", "state": "{state}", "zip": {73000 + u}}}}}'
            )
            events.append(("user_info", int(user_id[u]), value, int(at) * 1000))
    esc = lambda v: v.replace('"', '\\"')
    other = pl.DataFrame(
        {
            "topic": [e[0] for e in events],
            "k": [e[1] for e in events],
            "escaped": [esc(e[2]) for e in events],
            "ts": [e[3] for e in events],
        },
        schema={"topic": pl.Utf8, "k": pl.Int64, "escaped": pl.Utf8, "ts": pl.Int64},
    )

    # Readings: one a second through every visit, millisecond jitter.
    per_visit = length
    visit_of = np.repeat(np.arange(n * a.days), per_visit)
    offset_in_visit = np.arange(per_visit.sum()) - np.repeat(np.cumsum(per_visit) - per_visit, per_visit)
    ts_ms = (login[visit_of] + offset_in_visit) * 1000 + rng.integers(0, 1000, size=visit_of.size)
    hr = np.round(70 + 50 * np.abs(np.sin(offset_in_visit / 600.0)) + rng.normal(0, 4, size=visit_of.size), 1)
    hr[rng.random(visit_of.size) < 0.002] = 0.0
    dev = device_id[v_user[visit_of]]
    bpm = pl.DataFrame({"k": dev, "ts": ts_ms, "hr": hr}).with_columns(
        pl.format(
            '{\\"device_id\\": {}, \\"time\\": {}.{}, \\"heartrate\\": {}}',
            pl.col("k"),
            pl.col("ts") // 1000,
            (pl.col("ts") % 1000).cast(pl.Utf8).str.zfill(3),
            pl.col("hr"),
        ).alias("escaped"),
        pl.lit("bpm").alias("topic"),
    )
    dups = bpm.sample(fraction=0.003, seed=a.seed)
    stream = pl.concat([bpm.select(other.columns), dups.select(other.columns), other]).with_columns(
        (pl.col("k") % 4).alias("partition"),
        (pl.Series("late", rng.random(bpm.height + dups.height + other.height) < 0.001) & (pl.col("topic") == "bpm")),
    )
    stream = stream.sort(["late", "ts"], maintain_order=True).with_columns(
        pl.int_range(pl.len()).over("partition").alias("offset")
    )
    lines = stream.select(
        pl.format(
            '{"topic":"{}","partition":{},"offset":{},"timestamp":{},"key":"{}","value":"{}"}',
            "topic",
            "partition",
            "offset",
            "ts",
            "k",
            "escaped",
        ).alias("line")
    )
    shares = [0.20, 0.25, 0.25, 0.30] if a.files == 4 else [1 / a.files] * a.files
    start = 0
    for i, share in enumerate(shares):
        end = lines.height if i == len(shares) - 1 else start + int(lines.height * share)
        path = os.path.join(raw, "kafka_multiplex_bz", f"dense-multiplex-{i:02}.json")
        lines.slice(start, end - start).write_csv(path, include_header=False, quote_style="never")
        start = end
    print(f"gen_landing: {bpm.height + dups.height:,} bpm envelopes, {other.height:,} other events, {len(shares)} files")


if __name__ == "__main__":
    main()
