"""Small MongoDB helpers for the demo and the benchmarks: create a pipeline,
wait for an import while printing its progress, show what it wrote, its
first line errors, and a dry run's verdict.
Runs under Debian's /usr/bin/python3 with python3-pymongo."""
import sys
import time

from bson import ObjectId
from pymongo import MongoClient
from pymongo.uri_parser import parse_uri


def db_of(uri):
    name = parse_uri(uri).get("database") or "crm"
    return MongoClient(uri, serverSelectionTimeoutMS=5000)[name]


def cmd_pipeline(db, account):
    pid = ObjectId()
    db.pipelines.insert_one({"_id": pid, "account_id": ObjectId(account),
                             "name": "Sales"})
    print(pid)


def cmd_wait(db, qid, timeout):
    qid = ObjectId(qid)
    deadline = time.time() + float(timeout)
    last = None
    while time.time() < deadline:
        q = db.queues.find_one({"_id": qid}) or {}
        p = q.get("progress") or {}
        line = "import %s: status=%s lines=%s added=%s errors=%s" % (
            qid, q.get("status"), p.get("lines", 0), p.get("added", 0),
            p.get("errors", 0))
        if line != last:
            print(line, flush=True)
            last = line
        if q.get("status") in ("completed", "failed", "cancelled"):
            return 0 if q.get("status") == "completed" else 1
        time.sleep(0.2)
    print("import %s: no final status after %s s" % (qid, timeout))
    return 1


def cmd_show(db, qid):
    qid = ObjectId(qid)
    q = db.queues.find_one({"_id": qid})
    print("\nqueue document: status=%s in_progress=%s error=%s" % (
        q.get("status"), q.get("in_progress"), q.get("error")))
    stages = {s["_id"]: s for s in db.pipeline_stages.find()}
    print("\ndeals:")
    for d in db.deals.find({"import.queue_id": qid}).sort("import.line", 1):
        st = stages.get(d.get("stage_id"), {})
        print("  line %d: %-16s value=%-8g stage=%-12s status=%s contact=%s "
              "<%s> tags=%s" % (
                  d["import"]["line"], d.get("name"), d.get("value", 0),
                  st.get("name"), d.get("status"), d.get("contact_name"),
                  d.get("contact_email"), ",".join(d.get("tags", []))))
    print("\npipeline stages:")
    for s in stages.values():
        print("  %s  %s" % (s["_id"], s["name"]))
    imp = db.csv_imports.find_one({"queue_id": qid}) or {}
    print("\ncsv_imports: status=%s total_records=%s total_records_added=%s "
          "total_errors=%s notes=%s" % (
              imp.get("status"), imp.get("total_records"),
              imp.get("total_records_added"), imp.get("total_errors"),
              imp.get("notes")))
    for e in db.csv_import_errors.find({"queue_id": qid}).sort("line", 1):
        print("  line %d: %s: %s" % (e["line"], e.get("field"), e["message"]))
    return 0


def cmd_errors(db, qid, n):
    """The import's error file, if one was written, and its first errors."""
    qid = ObjectId(qid)
    imp = db.csv_imports.find_one({"queue_id": qid}) or {}
    ef = imp.get("error_file")
    if ef:
        print("error file: %s (%s rows, %s bytes)" % (
            ef.get("key"), ef.get("rows"), ef.get("bytes")))
    else:
        print("no error file recorded on csv_imports")
    total = db.csv_import_errors.count_documents({"queue_id": qid})
    print("first %d of %d stored line errors:" % (min(int(n), total), total))
    for e in db.csv_import_errors.find({"queue_id": qid}).sort(
            "line", 1).limit(int(n)):
        print("  line %-5d %-14s %s" % (e["line"], e.get("field") or "-",
                                        e["message"]))
    return 0


def cmd_verdict(db, qid):
    """What a finished import (or dry run) recorded on csv_imports."""
    qid = ObjectId(qid)
    imp = db.csv_imports.find_one({"queue_id": qid}) or {}
    ns = imp.get("new_stages") or {}
    print("csv_imports: status=%s dry_run=%s total_records=%s would_add=%s "
          "total_records_added=%s total_errors=%s" % (
              imp.get("status"), imp.get("dry_run"), imp.get("total_records"),
              imp.get("would_add"), imp.get("total_records_added"),
              imp.get("total_errors")))
    print("new stages it would create: %s %s" % (
        ns.get("count"), ", ".join(ns.get("names") or [])))
    print("deals written: %d" % db.deals.count_documents(
        {"import.queue_id": qid}))
    return 0


def main(argv):
    if len(argv) < 3:
        print("usage: devdb.py URI pipeline ACCOUNT | wait QID SECONDS | "
              "show QID | errors QID N | verdict QID", file=sys.stderr)
        return 64
    db = db_of(argv[1])
    cmd = argv[2]
    if cmd == "pipeline":
        cmd_pipeline(db, argv[3])
        return 0
    if cmd == "wait":
        return cmd_wait(db, argv[3], argv[4] if len(argv) > 4 else 120)
    if cmd == "show":
        return cmd_show(db, argv[3])
    if cmd == "errors":
        return cmd_errors(db, argv[3], argv[4] if len(argv) > 4 else 10)
    if cmd == "verdict":
        return cmd_verdict(db, argv[3])
    print("unknown command %r" % cmd, file=sys.stderr)
    return 64


if __name__ == "__main__":
    sys.exit(main(sys.argv))
