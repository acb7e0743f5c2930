"""Produces events to a Kafka broker with kafka-python, a client ferry did not write.

Usage: produce.py BOOTSTRAP TOPIC FILE
FILE holds one JSON object per line: {"type": ..., "key": ..., "raw": "<payload text>"}.
Each record gets the key, the payload bytes exactly as given, and an
`event-type` header.
"""
import json
import sys

from kafka import KafkaProducer


def main() -> None:
    bootstrap, topic, path = sys.argv[1:4]
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    sent = 0
    with open(path, encoding="utf-8") as f:
        for line in f:
            if not line.strip():
                continue
            e = json.loads(line)
            producer.send(
                topic,
                key=e["key"].encode(),
                value=e["raw"].encode(),
                headers=[("event-type", e["type"].encode())],
            )
            sent += 1
    producer.flush(timeout=30)
    producer.close(timeout=30)
    print(f"produced {sent} events")


if __name__ == "__main__":
    main()
