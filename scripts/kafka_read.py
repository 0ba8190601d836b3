#!/usr/bin/env python3
"""Reads a whole Kafka topic with kafka-python, an independent (pure-Python) client.

Usage: kafka_read.py BROKERS TOPIC [--uncommitted]

Prints one JSON object per message on stdout: partition, offset, key (text or null), value
(the parsed JSON), headers (name -> text). Reads with isolation_level="read_committed" unless
--uncommitted. Exit 3 if the topic does not exist, 1 if it cannot be read to its end in 120 s.
"""

import json
import sys
import time

from kafka import KafkaConsumer, TopicPartition


def main() -> int:
    if len(sys.argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    brokers, topic = sys.argv[1], sys.argv[2]
    options = sys.argv[3:]
    isolation = "read_uncommitted" if "--uncommitted" in options else "read_committed"
    consumer = KafkaConsumer(
        bootstrap_servers=brokers.split(","),
        isolation_level=isolation,
        enable_auto_commit=False,
        group_id=None,
        request_timeout_ms=30000,
    )
    partitions = consumer.partitions_for_topic(topic)
    if not partitions:
        print(f"topic {topic} not found", file=sys.stderr)
        return 3
    assigned = [TopicPartition(topic, p) for p in sorted(partitions)]
    consumer.assign(assigned)
    consumer.seek_to_beginning(*assigned)
    # With read_committed the end offsets are the last stable offsets.
    ends = consumer.end_offsets(assigned)
    deadline = time.monotonic() + 120
    out = sys.stdout
    while any(consumer.position(tp) < ends[tp] for tp in assigned):
        if time.monotonic() > deadline:
            print("timed out before the end of the topic", file=sys.stderr)
            return 1
        for records in consumer.poll(timeout_ms=500).values():
            for r in records:
                out.write(json.dumps({
                    "partition": r.partition,
                    "offset": r.offset,
                    "key": r.key.decode() if r.key is not None else None,
                    "value": json.loads(r.value),
                    "headers": {k: v.decode() for k, v in (r.headers or [])},
                }) + "\n")
    consumer.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
