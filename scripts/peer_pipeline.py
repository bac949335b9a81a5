#!/usr/bin/env python3
"""The peer of issue 12: fitlake's batch pipeline as a straightforward Python Polars + deltalake
program, to run back to back with `fitlake run --once` on the same landing data.

It is meant as the honest, idiomatic script a data engineer would write instead of fitlake, not a
straw man: lazy scans with projection and predicate pushdown, Polars' multithreaded NDJSON
and CSV readers, `str.json_decode` with a schema, one `write_deltalake` per table (a MERGE
where the table exists, a plain write on a fresh lakehouse), the same tables, keys and rules:

- bronze: every record with `load_time` and `source_file`; the multiplex with `date` and
  `week_part` (Sunday-start weeks), partitioned by `topic` and `week_part`; records with
  missing fields go to `bronze.quarantine`;
- silver: `users` (earliest registration per user), `gym_logs` (greatest logout per visit),
  `user_profile` (latest change per user), `workouts` (one event per user and time),
  `heart_rate` (greatest heartrate per device and time, valid when > 0), `user_bins` (age band
  at --as-of), `completed_workouts` (least start/stop pair per session, under 3 hours),
  `workout_bpm` (valid readings of a session's device with start < time <= end);
- gold: `workout_bpm_summary` (min/avg/max bpm per session with the user's bins) and
  `gym_summary` (sessions started during a visit, minutes to 2 decimals).

What it does not do (fitlake does): exactly-once progress across runs, quarantine with a
reason per field, plausible-time checks, order-independent upserts across runs, expectations.

Usage: peer_pipeline.py LANDING LAKEHOUSE [--as-of 2023-03-15]
  LANDING holds raw/{registered_users_bz,gym_logins_bz,kafka_multiplex_bz}/ (a data_zone).
Prints the seconds of each layer and of the whole run.
"""
import argparse
import datetime as dt
import os
import sys
import time

import polars as pl
from deltalake import DeltaTable, write_deltalake

SESSION = ["user_id", "workout_id", "session_id"]
US = pl.Datetime("us", "UTC")


def seconds_to_us(c: str) -> pl.Expr:
    return (pl.col(c).cast(pl.Float64) * 1_000_000).round().cast(pl.Int64).cast(US)


def upsert(path: str, df: pl.DataFrame, keys: list, when_matched: str | None = None, partition_by=None) -> None:
    """MERGE `df` into the table at `path` on `keys` (a write when the table does not exist)."""
    if not os.path.exists(os.path.join(path, "_delta_log")):
        write_deltalake(path, df.to_arrow(), partition_by=partition_by)
        return
    on = " AND ".join(f"t.{k} = s.{k}" for k in keys)
    merge = DeltaTable(path).merge(df.to_arrow(), predicate=on, source_alias="s", target_alias="t")
    if when_matched is not None:
        merge = merge.when_matched_update_all(predicate=when_matched)
    merge.when_not_matched_insert_all().execute()


def overwrite(path: str, df: pl.DataFrame) -> None:
    write_deltalake(path, df.to_arrow(), mode="overwrite")


def bronze(landing: str, lh: str, load_time: dt.datetime) -> None:
    raw = os.path.join(landing, "raw")
    stamp = [pl.lit(load_time).dt.replace_time_zone("UTC").alias("load_time")]
    users = pl.scan_csv(os.path.join(raw, "registered_users_bz", "*.csv"), include_file_paths="source_file")
    users = users.with_columns(
        pl.col("registration_timestamp").cast(pl.Int64).mul(1_000_000).cast(US), *stamp
    ).collect()
    write_deltalake(f"{lh}/bronze/registered_users_bz", users.to_arrow(), mode="append")
    logins = pl.scan_csv(os.path.join(raw, "gym_logins_bz", "*.csv"), include_file_paths="source_file")
    logins = logins.with_columns(
        pl.col("login").cast(pl.Int64).mul(1_000_000).cast(US),
        pl.col("logout").cast(pl.Int64).mul(1_000_000).cast(US),
        *stamp,
    ).collect()
    write_deltalake(f"{lh}/bronze/gym_logins_bz", logins.to_arrow(), mode="append")
    schema = {
        "key": pl.Utf8,
        "value": pl.Utf8,
        "topic": pl.Utf8,
        "partition": pl.Int64,
        "offset": pl.Int64,
        "timestamp": pl.Int64,
    }
    envelopes = pl.scan_ndjson(
        os.path.join(raw, "kafka_multiplex_bz", "*.json"), schema=schema, include_file_paths="source_file"
    )
    # Epoch milliseconds (seconds in the seed files).
    ts = pl.when(pl.col("timestamp") < 100_000_000_000).then(pl.col("timestamp") * 1000).otherwise(pl.col("timestamp"))
    date = pl.col("timestamp").dt.date()
    jan1_from_sunday = pl.date(date.dt.year(), 1, 1).dt.weekday() % 7
    week = (date.dt.ordinal_day().cast(pl.Int32) - 1 + jan1_from_sunday) // 7 + 1
    envelopes = envelopes.with_columns((ts * 1000).cast(US).alias("timestamp")).with_columns(
        date.alias("date"),
        pl.format("{}-{}", date.dt.year(), week).alias("week_part"),
        *stamp,
    )
    required = pl.all_horizontal(pl.col(c).is_not_null() for c in ("value", "topic", "partition", "offset", "timestamp"))
    table = envelopes.collect()
    good, bad = table.filter(required), table.filter(~required)
    write_deltalake(f"{lh}/bronze/kafka_multiplex_bz", good.to_arrow(), partition_by=["topic", "week_part"], mode="append")
    if bad.height:
        write_deltalake(f"{lh}/bronze/quarantine", bad.to_arrow(), mode="append")


def topic(lh: str, name: str, fields: dict) -> pl.LazyFrame:
    """The decoded payloads of one topic; undecodable ones (null required fields) dropped."""
    return (
        pl.scan_delta(f"{lh}/bronze/kafka_multiplex_bz")
        .filter(pl.col("topic") == name)
        .select(pl.col("value").str.json_decode(pl.Struct(fields)).alias("v"))
        .unnest("v")
    )


def silver(lh: str, as_of: dt.date) -> None:
    s = f"{lh}/silver"
    users = (
        pl.scan_delta(f"{lh}/bronze/registered_users_bz")
        .sort("registration_timestamp")
        .unique("user_id", keep="first")
        .select("user_id", "device_id", "mac_address", "registration_timestamp")
        .collect()
    )
    upsert(f"{s}/users", users, ["user_id"], "s.registration_timestamp < t.registration_timestamp")
    logs = (
        pl.scan_delta(f"{lh}/bronze/gym_logins_bz")
        .group_by("mac_address", "gym", "login")
        .agg(pl.col("logout").max())
        .collect()
    )
    upsert(f"{s}/gym_logs", logs, ["mac_address", "gym", "login"], "s.logout > t.logout")

    address = pl.Struct({"street_address": pl.Utf8, "city": pl.Utf8, "state": pl.Utf8, "zip": pl.Int64})
    info = topic(
        lh,
        "user_info",
        {
            "user_id": pl.Int64,
            "update_type": pl.Utf8,
            "timestamp": pl.Float64,
            "dob": pl.Utf8,
            "sex": pl.Utf8,
            "gender": pl.Utf8,
            "first_name": pl.Utf8,
            "last_name": pl.Utf8,
            "address": address,
        },
    )
    profile = (
        info.filter(pl.col("user_id").is_not_null() & pl.col("timestamp").is_not_null())
        .unnest("address")
        .with_columns(seconds_to_us("timestamp").alias("updated"), pl.col("dob").str.to_date("%m/%d/%Y", strict=False))
        .sort("updated")
        .unique("user_id", keep="last")
        .select(
            "user_id", "dob", "sex", "gender", "first_name", "last_name", "street_address", "city", "state", "zip",
            "updated", "update_type",
        )
        .collect()
    )
    upsert(f"{s}/user_profile", profile, ["user_id"], "s.updated > t.updated")

    workout = topic(
        lh,
        "workout",
        {"user_id": pl.Int64, "workout_id": pl.Int64, "timestamp": pl.Float64, "action": pl.Utf8, "session_id": pl.Int64},
    )
    workouts = (
        workout.drop_nulls()
        .with_columns(seconds_to_us("timestamp").alias("time"))
        .unique(["user_id", "time"], keep="any")
        .select("user_id", "workout_id", "time", "action", "session_id")
        .collect()
    )
    upsert(f"{s}/workouts", workouts, ["user_id", "time"])

    bpm = topic(lh, "bpm", {"device_id": pl.Int64, "time": pl.Float64, "heartrate": pl.Float64})
    heart_rate = (
        bpm.drop_nulls()
        .with_columns(seconds_to_us("time"))
        .group_by("device_id", "time")
        .agg(pl.col("heartrate").max())
        .with_columns((pl.col("heartrate") > 0).alias("valid"))
        .collect()
    )
    upsert(f"{s}/heart_rate", heart_rate, ["device_id", "time"], "s.heartrate > t.heartrate")

    # Age in whole years at as_of, banded as the original.
    dob = pl.col("dob")
    age = as_of.year - dob.dt.year() - (
        (dob.dt.month() > as_of.month) | ((dob.dt.month() == as_of.month) & (dob.dt.day() > as_of.day))
    ).cast(pl.Int32)
    bands = [(18, "under 18"), (25, "18-25"), (35, "25-35"), (45, "35-45"), (55, "45-55"), (65, "55-65"), (75, "65-75"), (85, "75-85"), (95, "85-95")]
    band = pl.when(dob.is_null() | (age < 0) | (age > 120)).then(pl.lit("invalid age"))
    for upper, label in bands:
        band = band.when(age < upper).then(pl.lit(label))
    bins = (
        pl.scan_delta(f"{s}/user_profile")
        .filter(pl.col("update_type") != "delete")
        .select("user_id", band.otherwise(pl.lit("95+")).alias("age"), "gender", "city", "state")
        .collect()
    )
    overwrite(f"{s}/user_bins", bins)

    events = pl.scan_delta(f"{s}/workouts")
    starts = events.filter(pl.col("action") == "start").select(*SESSION, pl.col("time").alias("start_time"))
    stops = events.filter(pl.col("action") == "stop").select(*SESSION, pl.col("time").alias("end_time"))
    completed = (
        starts.join(stops, on=SESSION)
        .filter((pl.col("end_time") > pl.col("start_time")) & (pl.col("end_time") - pl.col("start_time") < pl.duration(hours=3)))
        .sort("start_time", "end_time")
        .unique(SESSION, keep="first")
        .collect()
    )
    upsert(f"{s}/completed_workouts", completed, SESSION, "s.start_time < t.start_time")

    readings = pl.scan_delta(f"{s}/heart_rate").filter(pl.col("valid")).select("device_id", "time", "heartrate")
    workout_bpm = (
        pl.scan_delta(f"{s}/completed_workouts")
        .join(pl.scan_delta(f"{s}/users").select("user_id", "device_id"), on="user_id")
        .join(readings, on="device_id")
        .filter((pl.col("time") > pl.col("start_time")) & (pl.col("time") <= pl.col("end_time")))
        .select(*SESSION, "start_time", "end_time", "time", "heartrate")
        .collect()
    )
    upsert(f"{s}/workout_bpm", workout_bpm, [*SESSION, "time"], "s.heartrate <> t.heartrate")


def gold(lh: str) -> None:
    s, g = f"{lh}/silver", f"{lh}/gold"
    summary = (
        pl.scan_delta(f"{s}/workout_bpm")
        .group_by(SESSION)
        .agg(
            pl.col("heartrate").min().alias("min_bpm"),
            pl.col("heartrate").mean().alias("avg_bpm"),
            pl.col("heartrate").max().alias("max_bpm"),
            pl.len().cast(pl.Int64).alias("num_recordings"),
        )
        .join(pl.scan_delta(f"{s}/user_bins"), on="user_id", how="left")
        .select(*SESSION, "age", "gender", "city", "state", "min_bpm", "avg_bpm", "max_bpm", "num_recordings")
        .collect()
    )
    overwrite(f"{g}/workout_bpm_summary", summary)
    minutes = lambda a, b: ((pl.col(a) - pl.col(b)).dt.total_microseconds() / 60_000_000).round(2)
    sessions = pl.scan_delta(f"{s}/completed_workouts").join(
        pl.scan_delta(f"{s}/users").select("user_id", "mac_address"), on="user_id"
    )
    gym = (
        pl.scan_delta(f"{s}/gym_logs")
        .join(sessions, on="mac_address")
        .filter((pl.col("start_time") >= pl.col("login")) & (pl.col("start_time") <= pl.col("logout")))
        .select(
            pl.col("login").dt.date().alias("date"),
            "gym",
            "mac_address",
            "login",
            "workout_id",
            "session_id",
            minutes("logout", "login").alias("minutes_in_gym"),
            minutes("end_time", "start_time").alias("minutes_exercising"),
        )
        .unique()
        .collect()
    )
    overwrite(f"{g}/gym_summary", gym)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("landing")
    p.add_argument("lakehouse")
    p.add_argument("--as-of", default="2023-03-15")
    a = p.parse_args()
    lh = os.path.join(a.lakehouse, "managed")
    t0 = time.perf_counter()
    bronze(a.landing, lh, dt.datetime.now(dt.timezone.utc).replace(tzinfo=None))
    t1 = time.perf_counter()
    silver(lh, dt.date.fromisoformat(a.as_of))
    t2 = time.perf_counter()
    gold(lh)
    t3 = time.perf_counter()
    print(f"peer: bronze {t1 - t0:.2f} s  silver {t2 - t1:.2f} s  gold {t3 - t2:.2f} s  total {t3 - t0:.2f} s")


if __name__ == "__main__":
    main()
    # deltalake's runtime aborts now and then while the interpreter shuts down ("terminate
    # called without an active exception"): leave once the work is committed and reported.
    sys.stdout.flush()
    os._exit(0)
