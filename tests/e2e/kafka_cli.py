"""Talks to a Kafka broker with kafka-python, a client ferry did not write.

Usage:
  kafka_cli.py create BOOTSTRAP TOPIC PARTITIONS [KEY=VALUE ...]
  kafka_cli.py delete BOOTSTRAP TOPIC
  kafka_cli.py alter BOOTSTRAP TOPIC KEY=VALUE ...
  kafka_cli.py produce BOOTSTRAP TOPIC FILE [--linger-ms N] [--batch-size B]
                       [--transactional-id ID --transaction-size N --abort I,J,...]
  kafka_cli.py consume BOOTSTRAP TOPIC COUNT TIMEOUT_S
  kafka_cli.py offsets BOOTSTRAP TOPIC
  kafka_cli.py count BOOTSTRAP TOPIC TIMEOUT_S

`produce` reads one JSON object per line: {"type": ..., "key": ..., "raw":
"<payload text>"} with an optional "partition". Each record gets the key,
the payload bytes exactly as given, and an `event-type` header. With a
transactional id, records go out in transactions of N lines; the
transactions numbered in --abort (from 0) are aborted. It prints one line:
{"produced": n, "aborted": m}.

`consume` reads COUNT records from the beginning (read_committed) and
prints each as a JSON line {partition, offset, key, value, headers}.
`offsets` prints {"<partition>": [log start, end]}; `count` prints how many
records a read_committed consumer reads from the beginning.
"""
import json
import sys
import time

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic


def admin(bootstrap):
    return KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=30000)


def create(bootstrap, topic, partitions, *configs):
    config = dict(c.split("=", 1) for c in configs)
    a = admin(bootstrap)
    a.create_topics([NewTopic(topic, int(partitions), 1, topic_configs=config)])
    deadline = time.time() + 30
    while time.time() < deadline:
        if topic in a.list_topics():
            break
        time.sleep(0.1)
    a.close()
    print(json.dumps({"created": topic}))


def delete(bootstrap, topic):
    a = admin(bootstrap)
    a.delete_topics([topic])
    deadline = time.time() + 30
    while time.time() < deadline and topic in a.list_topics():
        time.sleep(0.1)
    a.close()
    print(json.dumps({"deleted": topic}))


def alter(bootstrap, topic, *configs):
    from kafka.admin import ConfigResource, ConfigResourceType

    config = dict(c.split("=", 1) for c in configs)
    a = admin(bootstrap)
    a.alter_configs([ConfigResource(ConfigResourceType.TOPIC, topic, configs=config)])
    a.close()
    print(json.dumps({"altered": topic}))


def options(args):
    out, i = {}, 0
    while i < len(args):
        out[args[i].lstrip("-").replace("-", "_")] = args[i + 1]
        i += 2
    return out


def produce(bootstrap, topic, path, *rest):
    opts = options(rest)
    settings = dict(
        bootstrap_servers=bootstrap,
        acks="all",
        linger_ms=int(opts.get("linger_ms", 5)),
        batch_size=int(opts.get("batch_size", 16384)),
    )
    tid = opts.get("transactional_id")
    if tid:
        settings["transactional_id"] = tid
    producer = KafkaProducer(**settings)
    if tid:
        producer.init_transactions()
    size = int(opts.get("transaction_size", 0) or 0)
    abort = {int(a) for a in opts.get("abort", "").split(",") if a}
    with open(path, encoding="utf-8") as f:
        lines = [json.loads(line) for line in f if line.strip()]
    produced = aborted = 0
    chunks = [lines[i:i + size] for i in range(0, len(lines), size)] if tid else [lines]
    for n, chunk in enumerate(chunks):
        if tid:
            producer.begin_transaction()
        for e in chunk:
            producer.send(
                topic,
                key=e["key"].encode(),
                value=e["raw"].encode(),
                headers=[("event-type", e["type"].encode())],
                partition=e.get("partition"),
            )
        if tid:
            if n in abort:
                producer.flush(timeout=30)
                producer.abort_transaction()
                aborted += len(chunk)
            else:
                producer.commit_transaction()
                produced += len(chunk)
        else:
            produced += len(chunk)
    producer.flush(timeout=30)
    producer.close(timeout=30)
    print(json.dumps({"produced": produced, "aborted": aborted}))


def consumer(bootstrap):
    return KafkaConsumer(
        bootstrap_servers=bootstrap,
        isolation_level="read_committed",
        enable_auto_commit=False,
        consumer_timeout_ms=1000,
    )


def assigned(c, topic):
    parts = [TopicPartition(topic, p) for p in sorted(c.partitions_for_topic(topic) or [])]
    c.assign(parts)
    c.seek_to_beginning(*parts)
    return parts


def consume(bootstrap, topic, count, timeout_s):
    c = consumer(bootstrap)
    assigned(c, topic)
    got = []
    deadline = time.time() + float(timeout_s)
    while len(got) < int(count) and time.time() < deadline:
        for records in c.poll(timeout_ms=500).values():
            for r in records:
                got.append({
                    "partition": r.partition,
                    "offset": r.offset,
                    "key": r.key.decode("utf-8", "replace") if r.key is not None else None,
                    "value": r.value.decode("utf-8", "replace") if r.value is not None else None,
                    "headers": {k: v.decode("utf-8", "replace") for k, v in (r.headers or [])},
                })
    c.close()
    for r in got:
        print(json.dumps(r))


def offsets(bootstrap, topic):
    c = consumer(bootstrap)
    parts = [TopicPartition(topic, p) for p in sorted(c.partitions_for_topic(topic) or [])]
    start = c.beginning_offsets(parts)
    end = c.end_offsets(parts)
    c.close()
    print(json.dumps({str(tp.partition): [start[tp], end[tp]] for tp in parts}))


def count(bootstrap, topic, timeout_s):
    c = consumer(bootstrap)
    parts = assigned(c, topic)
    end = c.end_offsets(parts)
    n = 0
    deadline = time.time() + float(timeout_s)
    while time.time() < deadline:
        for records in c.poll(timeout_ms=500).values():
            n += len(records)
        if all(c.position(tp) >= end[tp] for tp in parts):
            break
    c.close()
    print(json.dumps({"count": n}))


COMMANDS = {
    "create": create,
    "delete": delete,
    "alter": alter,
    "produce": produce,
    "consume": consume,
    "offsets": offsets,
    "count": count,
}

if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] not in COMMANDS:
        sys.exit(__doc__)
    COMMANDS[sys.argv[1]](*sys.argv[2:])
