"""Helpers of scripts/devmongo/dbcost: reset and report the dev server's
command counts, write a CSV of deals, wait for imports. The waiting itself
reads the queue documents once a second and prints how often; report
subtracts those reads."""
import sys
import time

from bson import ObjectId
from pymongo import MongoClient
from pymongo.uri_parser import parse_uri

WAIT_READS = 'queues.find'


def client(uri):
    return MongoClient(uri, serverSelectionTimeoutMS=30000)


def counts(uri, reset):
    reply = client(uri).admin.command('devCommandCounts', 1, reset=reset)
    return reply['counts']


def cmd_reset(uri):
    counts(uri, True)


def cmd_report(uri, phase, seconds, rows, own_reads=0):
    seconds = float(seconds)
    rows = int(rows)
    got = counts(uri, True)
    got[WAIT_READS] = got.get(WAIT_READS, 0) - int(own_reads)
    print('== %s: %.1f s%s' % (phase, seconds,
                                 ', %d rows' % rows if rows else ''))
    total = 0
    for key in sorted(got, key=lambda k: -got[k]):
        n = got[key]
        if n <= 0 or key.startswith('$cmd.devCommandCounts'):
            continue
        total += n
        line = '%-40s %8d  %8.2f/s' % (key, n, n / seconds)
        if rows:
            line += '  %8.2f per 1,000 rows' % (n * 1000.0 / rows)
        print(line)
    print('%-40s %8d  %8.2f/s' % ('total', total, total / seconds))


def cmd_csv(uri, rows):
    out = sys.stdout
    out.write('Deal Name,Value,Stage\n')
    stages = ('new', 'qualified', 'proposal', 'won')
    for i in range(int(rows)):
        # One row in 50 has a value that is not a number: a line error.
        value = 'n/a' if i % 50 == 49 else str((i * 37) % 100000)
        out.write('Deal %d,%s,%s\n' % (i + 1, value, stages[i % len(stages)]))


def cmd_wait(uri, *qids):
    db = client(uri)[parse_uri(uri)['database']]
    reads = 0
    pending = {ObjectId(q) for q in qids}
    while pending:
        time.sleep(1)
        for qid in list(pending):
            reads += 1
            q = db.queues.find_one({'_id': qid}, {'status': 1}) or {}
            if q.get('status') in ('completed', 'failed', 'cancelled'):
                pending.discard(qid)
    print(reads)


def main(argv):
    uri, cmd, args = argv[1], argv[2], argv[3:]
    {'reset': cmd_reset, 'report': cmd_report, 'csv': cmd_csv,
     'wait': cmd_wait}[cmd](uri, *args)


if __name__ == '__main__':
    main(sys.argv)
