#!/usr/bin/python3
"""Checks that every metric name an alert rule or a dashboard panel uses is
served. Usage: prom_names.py SCRAPE FILE... where SCRAPE holds prom_parse.py's
canonical lines of a real scrape, and each FILE is a Prometheus rule file
(.yml) or a Grafana dashboard (.json). Prints the names checked; exits 1
naming each one the scrape lacks (or a file without any name, which would
check nothing), 77 when PyYAML is not installed."""
import json
import re
import sys

try:
    import yaml
except ImportError:
    print("PyYAML is not installed", file=sys.stderr)
    sys.exit(77)

NAME = re.compile(r"\b((?:dealimport|process)_[a-z0-9_]+)\b")


def exprs(path):
    with open(path) as f:
        if path.endswith(".json"):
            dash = json.load(f)
            for panel in dash.get("panels", []):
                for t in panel.get("targets", []):
                    yield t["expr"]
        else:
            for group in yaml.safe_load(f)["groups"]:
                for rule in group["rules"]:
                    yield rule["expr"]


served = set()
with open(sys.argv[1]) as f:
    for line in f:
        served.add(re.split(r"[{ ]", line.strip(), 1)[0])

missing = []
for path in sys.argv[2:]:
    names = set()
    for e in exprs(path):
        names.update(NAME.findall(e))
    if not names:
        missing.append("%s: no metric name at all" % path)
    for n in sorted(names):
        print("%s: %s %s" % (path, n, "served" if n in served else "MISSING"))
        if n not in served:
            missing.append("%s: %s" % (path, n))
if missing:
    print("not in the scrape: " + ", ".join(missing), file=sys.stderr)
    sys.exit(1)
