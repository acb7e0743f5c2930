"""Parses Prometheus text from stdin with the reference parser
(prometheus_client) and prints every sample as one JSON line:
{"name": ..., "labels": {...}, "value": ...}. Exits non-zero if the text
does not parse."""

import json
import sys

from prometheus_client.parser import text_string_to_metric_families

text = sys.stdin.read()
for family in text_string_to_metric_families(text):
    for s in family.samples:
        print(json.dumps({"name": s.name, "type": family.type, "labels": s.labels, "value": s.value}))
