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
    # Each partition's end: ListOffsets' answer, raised to the high watermark the latest fetch
    # response carried. ListOffsets alone falls short on tansu 0.6.0, which answers the base
    # offset of the partition's last record batch plus one: a read that stopped there lost the
    # rest of that batch (up to 500 messages here). The loop counts the records poll() returned,
    # not position(). (A broker holding a transaction open would keep the high watermark above
    # what read_committed can return; the daemon has stopped when the tests read.)
    ends = consumer.end_offsets(assigned)
    beginnings = consumer.beginning_offsets(assigned)
    next_returned = {tp: beginnings[tp] for tp in assigned}

    def end(tp):
        return max(ends[tp], consumer.highwater(tp) or 0)

    deadline = time.monotonic() + 120
    idle_polls = 0
    out = sys.stdout
    while any(next_returned[tp] < end(tp) for tp in assigned):
        if time.monotonic() > deadline:
            print("timed out before the end of the topic", file=sys.stderr)
            return 1
        polled = consumer.poll(timeout_ms=500)
        idle_polls = 0 if polled else idle_polls + 1
        # Transaction markers are never returned: a partition whose remaining offsets are all
        # markers is at its end once the consumer has fetched past them and polls come back empty.
        if idle_polls >= 4 and all(next_returned[tp] >= end(tp) or consumer.position(tp) >= end(tp) for tp in assigned):
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
    # For a failure report: where the read stopped, against the ends it aimed at.
    print(json.dumps({
        "list_offsets": {tp.partition: ends[tp] for tp in assigned},
        "highwater": {tp.partition: consumer.highwater(tp) for tp in assigned},
        "next_returned": {tp.partition: next_returned[tp] for tp in assigned},
    }), file=sys.stderr)
    consumer.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
