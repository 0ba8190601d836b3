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
    # With read_committed the end offsets are the last stable offsets. The loop counts the
    # records poll() returned, not position(): kafka-python may advance the position when it
    # fetches, while up to max_poll_records fetched records still wait in its buffer.
    ends = consumer.end_offsets(assigned)
    beginnings = consumer.beginning_offsets(assigned)
    next_returned = {tp: beginnings[tp] for tp in assigned}
    deadline = time.monotonic() + 120
    idle_polls = 0
    out = sys.stdout
    while any(next_returned[tp] < ends[tp] for tp in assigned):
        if time.monotonic() > deadline:
            print("timed out before the end of the topic", file=sys.stderr)
            return 1
        polled = consumer.poll(timeout_ms=500)
        idle_polls = 0 if polled else idle_polls + 1
        # Transaction markers are never returned: a partition whose remaining offsets are all
        # markers is at its end once the consumer has fetched past them and polls come back empty.
        if idle_polls >= 4 and all(next_returned[tp] >= ends[tp] or consumer.position(tp) >= ends[tp] for tp in assigned):
            break
        for tp, records in polled.items():
            for r in records:
                next_returned[tp] = max(next_returned[tp], r.offset + 1)
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
