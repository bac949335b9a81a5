#!/usr/bin/env python3
"""A multiplex landing file moved to a later time, for incremental benchmarks (issue 12).

Keeps the `bpm` and `workout` envelopes of IN, shifts their Kafka timestamps and payload times
by --days, and renumbers workouts by +--workout-offset (so the sessions are new, not a second
pairing of stored ones); writes OUT. Used on a 1 % slice from scripts/gen_landing.py:

    gen_landing.py /tmp/inc --users 500 --days 1 --visit-seconds 200 --seed 99 --files 1
    later_day.py /tmp/inc/raw/kafka_multiplex_bz/dense-multiplex-00.json later-1pct.json --days 2
"""
import argparse
import json


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("input")
    p.add_argument("output")
    p.add_argument("--days", type=int, default=2)
    p.add_argument("--workout-offset", type=int, default=100)
    a = p.parse_args()
    shift = a.days * 86_400
    n = 0
    with open(a.input) as src, open(a.output, "w") as out:
        for line in src:
            e = json.loads(line)
            if e["topic"] not in ("bpm", "workout"):
                continue
            e["timestamp"] += shift * 1000
            v = json.loads(e["value"])
            if e["topic"] == "bpm":
                t = e["timestamp"]  # the reading's time is its Kafka timestamp, to the millisecond
                e["value"] = '{"device_id": %d, "time": %d.%03d, "heartrate": %s}' % (
                    v["device_id"], t // 1000, t % 1000, v["heartrate"])
            else:
                v["timestamp"] += shift
                v["workout_id"] += a.workout_offset
                e["value"] = json.dumps(v)
            out.write(json.dumps(e, separators=(",", ":")) + "\n")
            n += 1
    print(f"later_day: {n} envelopes")


if __name__ == "__main__":
    main()
