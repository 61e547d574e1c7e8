#!/usr/bin/env python3
"""Reads callgrind output files for scripts/bench cpu.

  callgrind.py total FILE             the run's instructions
  callgrind.py events FILE            the events part of them (below)
  callgrind.py profile FILE ROWS N    the top N functions, self and
                                      inclusive, per row, and the split
                                      between the events part (dip_msg.c,
                                      wrk_events.c, jansson, ZeroMQ) and the
                                      rest of the worker
"""
import re
import sys
from collections import defaultdict

EVENT_FILES = ("dip_msg.c", "wrk_events.c")
EVENT_OBJECTS = ("libjansson", "libzmq")
# for a build without debug information, where files are unknown
EVENT_PREFIXES = ("dip_msg_", "wrk_events_")


def parse(path):
    names = {"fl": {}, "fn": {}, "ob": {}}
    alias = {"fi": "fl", "fe": "fl", "cfi": "fl", "cfl": "fl", "cfn": "fn",
             "cob": "ob"}
    excl = defaultdict(int)
    edges = defaultdict(int)
    where = {}
    cur = {"fl": "", "fn": "", "ob": ""}
    callee = {"fl": "", "fn": "", "ob": ""}
    total = 0
    pending_call = False
    spec = re.compile(r"^(fl|fi|fe|fn|ob|cfi|cfl|cfn|cob)=(?:\((\d+)\))?\s*(.*)$")
    with open(path, errors="replace") as f:
        for line in f:
            line = line.rstrip("\n")
            m = spec.match(line)
            if m:
                key, ident, name = m.groups()
                table = names[alias.get(key, key)]
                if ident is not None:
                    if name:
                        table[ident] = name
                    name = table.get(ident, name)
                if key in ("fl", "fn", "ob"):
                    cur[key] = name
                    if key == "fn":
                        where[(cur["ob"], cur["fl"], name)] = cur["fl"]
                        callee = dict(cur)
                elif key in ("cfi", "cfl"):
                    callee["fl"] = name
                elif key == "cfn":
                    callee["fn"] = name
                elif key == "cob":
                    callee["ob"] = name
                continue
            if line.startswith("calls="):
                pending_call = True
                continue
            if line.startswith(("summary:", "totals:")):
                total = int(line.split()[1])
                continue
            if not line or not (line[0].isdigit() or line[0] in "+-*"):
                continue
            parts = line.split()
            cost = int(parts[1]) if len(parts) > 1 else 0
            # A function is its object, file and name: two static functions
            # of one name in one program are two functions.
            me = (cur["ob"], cur["fl"], cur["fn"])
            if pending_call:
                key = (callee["ob"] or cur["ob"], callee["fl"], callee["fn"])
                edges[(me, key)] += cost
                if key not in where:
                    where[key] = callee["fl"]
                pending_call = False
                callee = dict(cur)
            else:
                excl[me] += cost
    return total, excl, edges, where


def is_event(fn, where):
    ob, _, name = fn
    fl = where.get(fn, "")
    return (fl.endswith(EVENT_FILES) or name.startswith(EVENT_PREFIXES) or
            any(o in ob for o in EVENT_OBJECTS))


def short(fn):
    ob, fl, name = fn
    if fl and fl != "???":
        return "%s [%s]" % (name, fl.rsplit("/", 1)[-1])
    return "%s [%s]" % (name, ob.rsplit("/", 1)[-1])


def events_part(edges, where):
    """Instructions spent in the events part: every call from the rest of
    the program into it, whatever it calls in turn."""
    return sum(c for (a, b), c in edges.items()
               if not is_event(a, where) and is_event(b, where))


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "total":
        print(parse(sys.argv[2])[0])
        return
    if len(sys.argv) == 3 and sys.argv[1] == "events":
        _, _, edges, where = parse(sys.argv[2])
        print(events_part(edges, where))
        return
    if len(sys.argv) != 5 or sys.argv[1] != "profile":
        sys.exit(__doc__)
    total, excl, edges, where = parse(sys.argv[2])
    rows, n = float(sys.argv[3]), int(sys.argv[4])
    incl = defaultdict(int, excl)
    for (a, b), c in edges.items():
        if a != b:
            incl[a] += c
    events = events_part(edges, where)
    print("events part (dip_msg.c, wrk_events.c, jansson, ZeroMQ): "
          "%.0f instructions per row, %.0f%%" % (events / rows,
                                                100.0 * events / total))
    print("the rest of the worker: %.0f instructions per row, %.0f%%" %
          ((total - events) / rows, 100.0 * (total - events) / total))
    print("top %d functions by self cost (instructions per row, share):" % n)
    for fn, c in sorted(excl.items(), key=lambda x: -x[1])[:n]:
        print("  %8.0f %5.1f%%  %s" % (c / rows, 100.0 * c / total,
                                       short(fn)))
    print("top %d functions by inclusive cost (below the reader's row "
          "callback; named functions only):" % n)
    shown = 0
    for fn, c in sorted(incl.items(), key=lambda x: -x[1]):
        # The call chain from main down to the row callback holds nearly
        # everything and says nothing; so do the loader and unnamed code.
        if c > 0.6 * total or fn[2].startswith("0x") or \
                "ld-linux" in fn[0] or "'" in fn[2]:
            continue
        print("  %8.0f %5.1f%%  %s" % (c / rows, 100.0 * c / total,
                                       short(fn)))
        shown += 1
        if shown >= n:
            break


if __name__ == "__main__":
    main()
