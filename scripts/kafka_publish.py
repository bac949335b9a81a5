#!/usr/bin/env python3
"""Publishes a landing multiplex file to Kafka with a standard client (librdkafka, through the
`confluent-kafka` package): each envelope line's key, value and timestamp to its topic, in file
order, batched and compressed as librdkafka does it. The end-to-end tests use it to check that
fitlake reads what ordinary producers write (every compression codec).

Usage: kafka_publish.py BROKERS FILE [--compression none|gzip|snappy|lz4|zstd] [--partitions 3]
Topics are created with --partitions when missing. Prints `published N`.
"""
import argparse
import json
import sys

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("brokers")
    ap.add_argument("file")
    ap.add_argument("--compression", default="none")
    ap.add_argument("--partitions", type=int, default=3)
    args = ap.parse_args()

    envelopes = [json.loads(line) for line in open(args.file, encoding="utf-8") if line.strip()]
    topics = sorted({e["topic"] for e in envelopes})
    admin = AdminClient({"bootstrap.servers": args.brokers})
    existing = admin.list_topics(timeout=10).topics
    missing = [NewTopic(t, num_partitions=args.partitions, replication_factor=1) for t in topics if t not in existing]
    if missing:
        for topic, future in admin.create_topics(missing).items():
            future.result()

    producer = Producer({
        "bootstrap.servers": args.brokers,
        "compression.type": args.compression,
        "linger.ms": 50,
        "enable.idempotence": False,
        "acks": "all",
    })
    failures = []

    def delivered(err, _msg):
        if err is not None:
            failures.append(str(err))

    for e in envelopes:
        ts = e["timestamp"]
        ms = int(ts) if ts >= 100_000_000_000 else int(round(ts * 1000))  # the seed files use seconds
        value = e["value"] if isinstance(e["value"], str) else json.dumps(e["value"])
        key = e.get("key")
        producer.produce(e["topic"], value=value.encode(), key=None if key is None else str(key).encode(),
                         timestamp=ms, on_delivery=delivered)
        producer.poll(0)
    left = producer.flush(30)
    if left or failures:
        print(f"not delivered: {left} pending, errors {failures[:3]}", file=sys.stderr)
        return 1
    print(f"published {len(envelopes)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
