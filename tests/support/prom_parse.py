#!/usr/bin/python3
"""Parses Prometheus text (stdin) with prometheus_client's own parser and
prints each sample as one canonical line, NAME{K="V",...} VALUE with the
labels sorted, so a test reads values without parsing the format itself.
Exits 1 with the parser's error when the text does not parse, 77 when
prometheus_client is not installed."""
import sys

try:
    from prometheus_client.parser import text_string_to_metric_families
except ImportError:
    print("prometheus_client is not installed", file=sys.stderr)
    sys.exit(77)

text = sys.stdin.read()
try:
    families = list(text_string_to_metric_families(text))
except Exception as e:  # the parser raises ValueError and friends
    print("does not parse: %s" % e, file=sys.stderr)
    sys.exit(1)
if not families:
    print("no metric families", file=sys.stderr)
    sys.exit(1)
for fam in families:
    for s in fam.samples:
        labels = ",".join('%s="%s"' % (k, v) for k, v in sorted(s.labels.items()))
        print("%s%s %r" % (s.name, "{%s}" % labels if labels else "", s.value))
