"""The change history of the development server: its oplog.

Every write the engine applies (insert, update, replace, delete, drop) to a
namespace a change stream has been opened on is recorded here, bounded by
count and by bytes: entries in order, each with its own clusterTime, the
namespace, the documentKey and, as BSON bytes so later writes cannot change
them, the inserted or replacing document and an update's description
(computed from the document before and after, as the $v:2 delta of a real
update gives it). Writes elsewhere are not recorded, so a bulk load of an
unwatched collection costs one lookup per write; a resume from before a
namespace was first watched is answered as a point the oplog no longer
holds. Resume tokens are {_data: hex string}: the entry's clusterTime, its
kind (event, high-water mark, invalidate), its sequence number and the
server's epoch, so a token from another life of the server is history lost
too. Runs under the command lock (changestream.py).
"""

import bisect
import os
import re
import threading
import time

import bson
from bson.timestamp import Timestamp

# Bounds of the history, whichever comes first (a real oplog is bounded by
# size; a test wants the count).
HISTORY_ENTRIES = 100000
HISTORY_BYTES = 64 * 1024 * 1024

KIND_HIGH_WATER = 0
KIND_EVENT = 1
KIND_INVALIDATE = 2
# A token's _data, as History.token writes it: time, increment, kind, seq,
# epoch.
TOKEN = re.compile(r'^82([0-9A-F]{8})([0-9A-F]{8})([0-9A-F]{2})'
                   r'([0-9A-F]{16})([0-9A-F]{8})$')
# Databases no change stream may watch, and whose writes are not recorded.
INTERNAL_DBS = frozenset(['admin', 'config', 'local'])


class Entry:
    """One recorded write. doc and desc are BSON bytes or None."""

    __slots__ = ('seq', 'ts', 'op', 'db', 'coll', 'key', 'doc', 'desc',
                 'size')

    def __init__(self, seq, ts, op, db, coll, key, doc, desc):
        self.seq = seq
        self.ts = ts
        self.op = op
        self.db = db
        self.coll = coll
        self.key = key
        self.doc = doc
        self.desc = desc
        self.size = 64 + len(key or b'') + len(doc or b'') + len(desc or b'')


def _same(a, b):
    if type(a) is not type(b):
        return False
    if isinstance(a, (dict, list)):
        return bson.encode({'v': a}) == bson.encode({'v': b})
    return a == b


def _diff(path, before, after, updated, removed, truncated):
    for k, v in after.items():
        p = path + k
        if k not in before:
            updated[p] = v
            continue
        old = before[k]
        if _same(old, v):
            continue
        if isinstance(old, dict) and isinstance(v, dict):
            _diff(p + '.', old, v, updated, removed, truncated)
        elif isinstance(old, list) and isinstance(v, list) and \
                len(v) >= len(old) and _same(v[:len(old)], old):
            for i in range(len(old), len(v)):
                updated['%s.%d' % (p, i)] = v[i]
        elif isinstance(old, list) and isinstance(v, list) and \
                _same(old[:len(v)], v):
            truncated.append({'field': p, 'newSize': len(v)})
        else:
            updated[p] = v
    for k in before:
        if k not in after:
            removed.append(path + k)


def describe(before, after):
    """An update's updateDescription from the document before and after."""
    updated, removed, truncated = {}, [], []
    _diff('', before, after, updated, removed, truncated)
    return {'updatedFields': updated, 'removedFields': removed,
            'truncatedArrays': truncated}


class History:
    """The bounded record of writes. Runs under the command lock."""

    def __init__(self, lock):
        self.entries = []
        self.bytes = 0
        self.last_seq = 0
        self.last_ts = Timestamp(int(time.time()), 0)
        self.dropped_any = False
        # A token from another life of the server names a lost history.
        self.epoch = int.from_bytes(os.urandom(4), 'big')
        self.changed = threading.Condition(lock)
        self.max_entries = HISTORY_ENTRIES
        self.max_bytes = HISTORY_BYTES
        # Namespaces ('db.coll') and databases ('db.') a stream has been
        # opened on, with the seq from which their history is kept: writes
        # elsewhere are not recorded, so a bulk load of an unwatched
        # collection costs one lookup per write. A resume from before that
        # seq is answered as a real server answers a point its oplog no
        # longer holds.
        self.watched = {}

    # -- recording (the engine's hooks) --------------------------------

    def _next_ts(self):
        now = int(time.time())
        if now > self.last_ts.time:
            return Timestamp(now, 1)
        return Timestamp(self.last_ts.time, self.last_ts.inc + 1)

    def watching(self, ns):
        w = self.watched
        return bool(w) and (ns in w or ns[:ns.find('.') + 1] in w)

    def watch(self, key):
        """Starts keeping key's history (a 'db.coll' or a 'db.'); the seq
        from which it is kept."""
        return self.watched.setdefault(key, self.last_seq)

    def _record(self, op, ns, key, doc=None, desc=None):
        db, _, coll = ns.partition('.')
        if db in INTERNAL_DBS or coll.startswith('system.'):
            return
        self.last_seq += 1
        self.last_ts = self._next_ts()
        e = Entry(self.last_seq, self.last_ts, op, db, coll, key, doc, desc)
        self.entries.append(e)
        self.bytes += e.size
        if len(self.entries) > self.max_entries or \
                self.bytes > self.max_bytes:
            self._trim()
        self.changed.notify_all()

    def _trim(self):
        n = 0
        while len(self.entries) - n > 1 and (
                len(self.entries) - n > self.max_entries or
                self.bytes > self.max_bytes):
            self.bytes -= self.entries[n].size
            n += 1
        if n:
            del self.entries[:n]
            self.dropped_any = True

    def drop(self, everything=False):
        """Drops every entry but the newest (an oplog keeps its last), or
        every one: then no token of this history resumes."""
        n = len(self.entries) if everything else max(len(self.entries) - 1,
                                                      0)
        if everything:
            self.dropped_any = True
        if n:
            self.bytes -= sum(e.size for e in self.entries[:n])
            del self.entries[:n]
            self.dropped_any = True
        self.changed.notify_all()
        return n

    def inserted(self, coll, doc):
        if self.watching(coll.ns):
            self._record('insert', coll.ns, bson.encode({'_id': doc['_id']}),
                         bson.encode(doc))

    def deleted(self, coll, doc_id):
        if self.watching(coll.ns):
            self._record('delete', coll.ns, bson.encode({'_id': doc_id}))

    def dropped(self, ns):
        if self.watching(ns):
            self._record('drop', ns, None)

    def before_update(self, coll, spec, multi):
        """The documents an update will touch, as BSON, before it runs
        (None where no stream watches)."""
        if not self.watching(coll.ns):
            return None
        out = []
        for doc in coll._iter_documents(spec):
            out.append((doc['_id'], bson.encode(doc)))
            if not multi:
                break
        return out

    def after_update(self, coll, before, update):
        """Records an update or replace event for each document changed."""
        from engine import store_key  # engine imports nothing of ours
        if not before:
            return
        replacement = isinstance(update, dict) and not any(
            k[:1] == '$' for k in update)
        docs = coll.documents
        for doc_id, raw in before:
            after = docs.get(store_key(doc_id))
            if after is None:
                continue
            now = bson.encode(after)
            if now == raw:
                continue
            key = bson.encode({'_id': doc_id})
            if replacement:
                self._record('replace', coll.ns, key, now)
            else:
                desc = describe(bson.decode(raw), after)
                self._record('update', coll.ns, key, None, bson.encode(desc))

    # -- positions and tokens ------------------------------------------

    @property
    def base(self):
        """The seq of the oldest entry held (last_seq + 1 when none)."""
        return self.entries[0].seq if self.entries else self.last_seq + 1

    def token(self, seq, ts, kind):
        return {'_data': '82%08X%08X%02X%016X%08X' % (
            ts.time, ts.inc, kind, seq, self.epoch)}

    def high_water(self):
        return self.token(self.last_seq, self.last_ts, KIND_HIGH_WATER)

    def entry_token(self, e, kind=KIND_EVENT):
        return self.token(e.seq, e.ts, kind)

    def index_of(self, seq):
        return seq - self.base

    def lost(self, seq):
        """True when a stream that has consumed up to seq cannot go on."""
        return self.dropped_any and seq < self.base

    def after_time(self, ts):
        """The seq after which events at or after ts come."""
        key = (ts.time, ts.inc)
        i = bisect.bisect_left([(e.ts.time, e.ts.inc) for e in self.entries],
                               key)
        if i < len(self.entries):
            return self.entries[i].seq - 1
        return self.last_seq
