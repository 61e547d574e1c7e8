"""Change streams of the development server, as a MongoDB 5.0 replica set
speaks them.

The writes are recorded by changehistory.History (the development server's
oplog). An aggregate whose first
stage is $changeStream opens a tailable cursor on that history; getMore waits
up to maxTimeMS (1 s by default) for an event that passes the stream's own
pipeline, releasing the command lock meanwhile so other connections go on,
and every batch carries a postBatchResumeToken. Resume tokens are
{_data: hex string}, opaque to clients; resumeAfter / startAfter /
startAtOperationTime start after them, and a point the history no longer
holds fails with ChangeStreamHistoryLost (286) labelled
NonResumableChangeStreamError, as mongod does when the oplog has rolled
over. A standalone server refuses the stage (40573). Two admin commands of
the development server's own: devDropChangeHistory drops every entry but the
newest (as an oplog truncation would: a resume from before it then fails with
286), devDropChangeStreams closes the connections of open change-stream
cursors (a client then resumes on a new connection from its token). All of it
runs under the command lock but the wait.
"""

import time

import bson
from bson.int64 import Int64
from bson.raw_bson import RawBSONDocument
from bson.timestamp import Timestamp

import mongomock.aggregate

from changehistory import History, INTERNAL_DBS, KIND_INVALIDATE, TOKEN

DEFAULT_AWAIT_MS = 1000
BATCH_BYTES = 16 * 1024 * 1024 - 64 * 1024
DEFAULT_FIRST_BATCH = 101

# Stages a change stream's pipeline may hold after $changeStream.
ALLOWED_STAGES = frozenset(['$match', '$project', '$addFields', '$set',
                            '$unset', '$replaceRoot', '$replaceWith',
                            '$redact'])
SPEC_FIELDS = frozenset(['resumeAfter', 'startAfter', 'startAtOperationTime',
                         'fullDocument', 'fullDocumentBeforeChange',
                         'allChangesForCluster'])

NON_RESUMABLE = ['NonResumableChangeStreamError']


def first_stage(cmd):
    """True when the aggregate's pipeline opens with $changeStream."""
    pipeline = cmd.get('pipeline')
    return isinstance(pipeline, list) and pipeline and isinstance(
        pipeline[0], dict) and '$changeStream' in pipeline[0]


class StreamCursor:
    """An open change stream: where it is in the history, what it wants."""

    __slots__ = ('cursor_id', 'ns', 'db', 'coll', 'pos', 'pipeline',
                 'lookup', 'conn', 'invalidated')

    def __init__(self, ns, db, coll, pos, pipeline, lookup, conn):
        self.cursor_id = 0
        self.ns = ns
        self.db = db
        self.coll = coll
        self.pos = pos
        self.pipeline = pipeline
        self.lookup = lookup
        self.conn = conn
        self.invalidated = False


class Streams:
    """The $changeStream stage, its getMore and the admin commands."""

    def __init__(self, commands):
        self.commands = commands
        self.history = History(commands.lock)
        if commands.replset is not None:
            commands.engine.history = self.history

    def table(self):
        return {'devDropChangeHistory': self.cmd_drop_history,
                'devDropChangeStreams': self.cmd_drop_streams}

    # -- errors ---------------------------------------------------------

    def _error(self, code, msg, labels=None):
        from commands import CommandError
        extra = {'errorLabels': labels} if labels else {}
        return CommandError(code, msg, **extra)

    def _lost(self, ns):
        return self._error(
            286, 'Executor error during getMore :: caused by :: Resume of '
            'change stream was not possible, as the resume point may no '
            'longer be in the oplog. (namespace %s)' % ns, NON_RESUMABLE)

    def _parse_token(self, spec, field):
        tok = spec[field]
        if not isinstance(tok, dict) or not isinstance(tok.get('_data'),
                                                       str):
            raise self._error(
                2, "BSON field '$changeStream.%s' must be a resume token "
                "document with a string '_data'" % field, NON_RESUMABLE)
        m = TOKEN.match(tok['_data'])
        if m is None:
            raise self._error(2, 'malformed resume token: %r' % tok['_data'],
                              NON_RESUMABLE)
        return int(m.group(3), 16), int(m.group(4), 16), int(m.group(5), 16)

    # -- aggregate ------------------------------------------------------

    def aggregate(self, db, cmd, conn):
        c = self.commands
        if c.replset is None:
            raise self._error(40573, 'The $changeStream stage is only '
                              'supported on replica sets')
        target = cmd['aggregate']
        pipeline = cmd['pipeline']
        spec = pipeline[0]['$changeStream']
        if not isinstance(spec, dict):
            raise self._error(14, "the $changeStream stage specification "
                              "must be an object", NON_RESUMABLE)
        for field in spec:
            if field not in SPEC_FIELDS:
                raise self._error(40415, "BSON field '$changeStream.%s' is "
                                  "an unknown field." % field, NON_RESUMABLE)
        if spec.get('allChangesForCluster'):
            raise self._error(2, 'a change stream on the whole cluster is '
                              'not supported by the development server')
        if db in INTERNAL_DBS:
            raise self._error(73, "$changeStream may not be opened on the "
                              "internal %s database" % db, NON_RESUMABLE)
        if isinstance(target, str):
            coll = target
            ns = '%s.%s' % (db, coll)
        elif target == 1 and not isinstance(target, bool):
            coll = None
            ns = '%s.$cmd.aggregate' % db
        else:
            raise self._error(73, 'aggregate must name a collection or be '
                              '1 for a $changeStream', NON_RESUMABLE)
        for stage in pipeline[1:]:
            if not isinstance(stage, dict) or len(stage) != 1:
                raise self._error(40323, 'A pipeline stage specification '
                                  'object must contain exactly one field.')
            op = next(iter(stage))
            if op not in ALLOWED_STAGES:
                raise self._error(20, 'Stage %s is not permitted in a '
                                  '$changeStream pipeline' % op,
                                  NON_RESUMABLE)
        full = spec.get('fullDocument', 'default')
        if full not in ('default', 'updateLookup'):
            raise self._error(2, "unsupported fullDocument '%s' (a 5.0 "
                              "server knows 'default' and 'updateLookup')"
                              % full, NON_RESUMABLE)
        if spec.get('fullDocumentBeforeChange', 'off') != 'off':
            raise self._error(2, 'fullDocumentBeforeChange is not supported '
                              'by the development server')
        starts = [f for f in ('resumeAfter', 'startAfter',
                              'startAtOperationTime') if f in spec]
        if 'resumeAfter' in spec and 'startAfter' in spec:
            raise self._error(50865, "Do not specify both 'resumeAfter' and "
                              "'startAfter' in a $changeStream stage",
                              NON_RESUMABLE)
        if len(starts) > 1:
            raise self._error(40674, 'Only one type of resume option is '
                              'allowed, but multiple were found.',
                              NON_RESUMABLE)
        h = self.history
        since = h.watch(ns if coll is not None else db + '.')
        if coll is not None and db + '.' in h.watched:
            since = min(since, h.watched[db + '.'])
        pos = h.last_seq
        if starts and starts[0] != 'startAtOperationTime':
            kind, seq, epoch = self._parse_token(spec, starts[0])
            if kind == KIND_INVALIDATE and starts[0] == 'resumeAfter':
                raise self._error(260, 'Attempting to resume a change stream '
                                  "using 'resumeAfter' is not allowed from "
                                  'an invalidate notification.',
                                  NON_RESUMABLE)
            if epoch != h.epoch or seq > h.last_seq or seq < since or \
                    h.lost(seq):
                raise self._lost(ns)
            pos = seq
        elif starts:
            ts = spec['startAtOperationTime']
            if not isinstance(ts, Timestamp):
                raise self._error(14, "BSON field '$changeStream."
                                  "startAtOperationTime' must be a "
                                  "timestamp", NON_RESUMABLE)
            pos = h.after_time(ts)
            if pos < since or h.lost(pos):
                raise self._lost(ns)
        cur = StreamCursor(ns, db, coll, pos, pipeline[1:],
                           full == 'updateLookup', conn)
        batch_size = c._cursor_batch_size(cmd, 'aggregate')
        if batch_size is None:
            batch_size = DEFAULT_FIRST_BATCH
        batch = self._collect(cur, batch_size)
        if not cur.invalidated:
            cur.cursor_id = c._new_cursor_id()
            if len(c.cursors) >= 10000:
                del c.cursors[next(iter(c.cursors))]
            c.cursors[cur.cursor_id] = cur
        return self._reply(cur, 'firstBatch', batch)

    def _reply(self, cur, field, batch):
        return {'cursor': {field: batch, 'postBatchResumeToken':
                           self._post_batch_token(cur),
                           'id': Int64(cur.cursor_id), 'ns': cur.ns},
                'ok': 1.0}

    def _post_batch_token(self, cur):
        h = self.history
        if cur.invalidated or cur.pos >= h.last_seq:
            if cur.invalidated:
                e = h.entries[h.index_of(cur.pos)] if h.index_of(
                    cur.pos) >= 0 else None
                if e is not None:
                    return h.entry_token(e, KIND_INVALIDATE)
            return h.high_water()
        i = h.index_of(cur.pos)
        if i < 0:
            return h.high_water()
        return h.entry_token(h.entries[i])

    # -- getMore --------------------------------------------------------

    def get_more(self, cur, cmd, conn, batch_size):
        """Runs under the command lock; waits with it released."""
        c = self.commands
        wait_ms = cmd.get('maxTimeMS', DEFAULT_AWAIT_MS)
        if isinstance(wait_ms, bool) or not isinstance(wait_ms, (int, float)):
            wait_ms = DEFAULT_AWAIT_MS
        deadline = time.monotonic() + max(float(wait_ms), 0.0) / 1000.0
        cur.conn = conn
        while True:
            if self.history.lost(cur.pos + 1):
                c.cursors.pop(cur.cursor_id, None)
                raise self._lost(cur.ns)
            batch = self._collect(cur, batch_size)
            left = deadline - time.monotonic()
            if batch or cur.invalidated or left <= 0:
                break
            waited = time.monotonic()
            self.history.changed.wait(left)
            # devCommandCounts' seconds are time under the lock: not this.
            c.seconds['$cmd.getMore'] -= time.monotonic() - waited
            if c.cursors.get(cur.cursor_id) is not cur:
                from commands import CommandError
                raise CommandError(43, 'cursor id %d not found'
                                   % cur.cursor_id)
        if cur.invalidated:
            c.cursors.pop(cur.cursor_id, None)
            reply = self._reply(cur, 'nextBatch', batch)
            reply['cursor']['id'] = Int64(0)
            return reply
        return self._reply(cur, 'nextBatch', batch)

    # -- events ---------------------------------------------------------

    def _wants(self, cur, e):
        if e.db != cur.db:
            return False
        return cur.coll is None or e.coll == cur.coll

    def _events(self, cur, e):
        h = self.history
        ns = {'db': e.db, 'coll': e.coll}
        base = {'_id': h.entry_token(e), 'operationType': e.op,
                'clusterTime': e.ts}
        if e.op == 'drop':
            ev = dict(base, ns=ns)
            if cur.coll is None:
                return [ev], False
            inv = {'_id': h.entry_token(e, KIND_INVALIDATE),
                   'operationType': 'invalidate', 'clusterTime': e.ts}
            return [ev, inv], True
        key = bson.decode(e.key)
        if e.op in ('insert', 'replace'):
            ev = dict(base, fullDocument=bson.decode(e.doc), ns=ns,
                      documentKey=key)
        elif e.op == 'update':
            ev = dict(base)
            if cur.lookup:
                ev['fullDocument'] = self._lookup(e, key)
            ev.update(ns=ns, documentKey=key,
                      updateDescription=bson.decode(e.desc))
        else:
            ev = dict(base, ns=ns, documentKey=key)
        return [ev], False

    def _lookup(self, e, key):
        from engine import store_key
        coll, _ = self.commands.engine.collection(e.db, e.coll)
        if coll is None:
            return None
        doc = coll.documents.get(store_key(key['_id']))
        return None if doc is None else bson.decode(bson.encode(doc))

    def _filter(self, cur, ev):
        if not cur.pipeline:
            return ev
        token = ev['_id']
        database = self.commands.engine.database(cur.db)
        out = list(mongomock.aggregate.process_pipeline([ev], database,
                                                        cur.pipeline, None))
        if not out:
            return None
        if out[0].get('_id') != token:
            from commands import CommandError
            raise CommandError(280, 'Encountered an event whose _id field, '
                               'which contains the resume token, was '
                               'modified by the pipeline. Modifying the _id '
                               'field of an event makes it impossible to '
                               'resume the stream from that point. Only '
                               'transformations that retain the unmodified '
                               '_id field are allowed.',
                               errorLabels=NON_RESUMABLE)
        return out[0]

    def _collect(self, cur, limit):
        """Up to limit events after cur.pos that pass cur's pipeline, as
        encoded documents; advances cur.pos past what it read."""
        h = self.history
        out = []
        size = 0
        i = h.index_of(cur.pos + 1)
        while i < len(h.entries) and (limit is None or len(out) < limit) \
                and not cur.invalidated:
            e = h.entries[i]
            if not self._wants(cur, e):
                cur.pos = e.seq
                i += 1
                continue
            events, invalidates = self._events(cur, e)
            raws = []
            for n, ev in enumerate(events):
                if n == 0:
                    ev = self._filter(cur, ev)
                if ev is not None:
                    raws.append(bson.encode(ev))
            grown = sum(len(r) for r in raws)
            if out and size + grown > BATCH_BYTES:
                break
            out.extend(RawBSONDocument(r) for r in raws)
            size += grown
            cur.pos = e.seq
            cur.invalidated = invalidates
            i += 1
        return out

    # -- the development server's own commands --------------------------

    def cmd_drop_history(self, db, cmd, conn):
        """{devDropChangeHistory: 1, all: bool}: drops every history
        entry but the newest (all: every one, as a wiped oplog); a stream
        or token from before it then fails with 286."""
        if db != 'admin':
            raise self._error(13, 'devDropChangeHistory may only be run '
                              'against the admin database.')
        everything = cmd.get('all') is True
        return {'dropped': self.history.drop(everything), 'ok': 1.0}

    def cmd_drop_streams(self, db, cmd, conn):
        """{devDropChangeStreams: 1}: closes the connection of every open
        change-stream cursor and forgets the cursors."""
        if db != 'admin':
            raise self._error(13, 'devDropChangeStreams may only be run '
                              'against the admin database.')
        c = self.commands
        victims = [cur for cur in c.cursors.values()
                   if isinstance(cur, StreamCursor)]
        closed = set()
        for cur in victims:
            del c.cursors[cur.cursor_id]
            drop = getattr(cur.conn, 'drop', None)
            if drop is not None and cur.conn.conn_id not in closed:
                closed.add(cur.conn.conn_id)
                drop()
        self.history.changed.notify_all()
        return {'cursors': len(victims), 'connections': len(closed),
                'ok': 1.0}
