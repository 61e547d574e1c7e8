"""Command layer of the development server: MongoDB 5.0 command semantics.

Validates each command document, runs it on the engine under one lock (in
replica-set mode through the member's state and sessions, see replset), and
builds the reply in the shape mongod 5.0 gives: ok:1 with the command's
fields, or ok:0 with errmsg, code and codeName; write commands report
per-statement writeErrors. Server-side cursors (find, aggregate, listIndexes,
listCollections) live here, batched by count and by size, until exhausted,
killed or evicted.
"""

import collections
import copy
import datetime
import itertools
import os
import random
import sys
import threading
import time
import traceback

from bson.errors import BSONError
from bson.int64 import Int64
from bson.raw_bson import RawBSONDocument

import mongomock
from mongomock.filtering import filter_applies

import bsonenc
import changestream
import cost
import devadmin
import engine as engine_mod
import planner
import replset as replset_mod
from engine import DupKeyError

SERVER_VERSION = '5.0.0'
MAX_WIRE_VERSION = 13
MAX_BSON_SIZE = 16 * 1024 * 1024
MAX_MESSAGE_SIZE = 48000000
MAX_WRITE_BATCH = 100000
DEFAULT_FIRST_BATCH = 101
# Room for the reply's own fields around a batch.
BATCH_BYTES = MAX_BSON_SIZE - 64 * 1024
MAX_OPEN_CURSORS = 10000

CODE_NAMES = {
    1: 'InternalError',
    2: 'BadValue',
    9: 'FailedToParse',
    13: 'Unauthorized',
    14: 'TypeMismatch',
    16: 'InvalidLength',
    26: 'NamespaceNotFound',
    27: 'IndexNotFound',
    40: 'ConflictingUpdateOperators',
    43: 'CursorNotFound',
    50: 'MaxTimeMSExpired',
    48: 'NamespaceExists',
    59: 'CommandNotFound',
    76: 'NoReplicationEnabled',
    66: 'ImmutableField',
    67: 'CannotCreateIndex',
    72: 'InvalidOptions',
    73: 'InvalidNamespace',
    85: 'IndexOptionsConflict',
    86: 'IndexKeySpecsConflict',
    115: 'CommandNotSupported',
    291: 'NoQueryExecutionPlans',
    11000: 'DuplicateKey',
    40414: 'Location40414',
}

UPDATE_OPERATORS = frozenset([
    '$set', '$unset', '$inc', '$mul', '$min', '$max', '$push', '$addToSet',
    '$pull', '$pullAll', '$pop', '$rename', '$setOnInsert', '$currentDate',
])

INDEX_OPTIONS = ('unique', 'sparse', 'partialFilterExpression',
                 'expireAfterSeconds', 'collation', 'hidden')


# Answered outside the command lock, as mongod answers them while other
# operations run.
HANDSHAKE_COMMANDS = frozenset(('hello', 'isMaster', 'ismaster'))


class CommandError(Exception):
    """A command that fails as a whole: ok:0 with code and codeName."""

    def __init__(self, code, errmsg, **extra):
        super().__init__(errmsg)
        self.code = code
        self.errmsg = errmsg
        self.extra = extra

    def reply(self):
        out = {'ok': 0.0, 'errmsg': self.errmsg, 'code': self.code,
               'codeName': CODE_NAMES.get(self.code, 'Location%d' % self.code)}
        out.update(self.extra)
        return out


def _wrong_type(cmd_name, field, value, expected):
    return CommandError(14, "BSON field '%s.%s' is the wrong type '%s', "
                        "expected type '%s'"
                        % (cmd_name, field, engine_mod.bson_type_name(value),
                           expected))


def _missing(cmd_name, field):
    return CommandError(40414, "BSON field '%s.%s' is missing but a required "
                        "field" % (cmd_name, field))


def _doc(cmd, cmd_name, field, default=None, required=False):
    v = cmd.get(field)
    if v is None:
        if required:
            raise _missing(cmd_name, field)
        return default
    if not isinstance(v, dict):
        raise _wrong_type(cmd_name, field, v, 'object')
    return v


def _bool(cmd, cmd_name, field, default=False):
    v = cmd.get(field)
    if v is None:
        return default
    if isinstance(v, (bool, int, float)):
        return bool(v)
    raise _wrong_type(cmd_name, field, v, 'bool')


def _int(cmd, cmd_name, field, default=None, minimum=None):
    v = cmd.get(field)
    if v is None:
        return default
    if isinstance(v, bool) or not isinstance(v, (int, float)) or (
            isinstance(v, float) and not v.is_integer()):
        raise _wrong_type(cmd_name, field, v, 'long')
    v = int(v)
    if minimum is not None and v < minimum:
        raise CommandError(2, "BSON field '%s.%s' value must be >= %d, "
                           "actual value '%d'" % (cmd_name, field, minimum,
                                                  v))
    return v


def _coll_name(cmd, cmd_name, db):
    v = cmd[cmd_name]
    if not isinstance(v, str):
        raise CommandError(2, "collection name has invalid type %s"
                           % engine_mod.bson_type_name(v))
    if not v or '$' in v or '\x00' in v or v.startswith('.'):
        raise CommandError(73, "Invalid namespace specified '%s.%s'"
                           % (db, v))
    return v


def _sort_list(spec, cmd_name):
    if spec is None:
        return None
    out = []
    for key, direction in spec.items():
        if isinstance(direction, dict):
            raise CommandError(2, "sort by %s is not supported by the "
                               "development server" % key)
        if isinstance(direction, bool) or not isinstance(
                direction, (int, float)) or direction not in (1, -1):
            raise CommandError(2, "%s: bad sort specification for '%s'"
                               % (cmd_name, key))
        out.append((key, int(direction)))
    return out or None


def _error_code(exc):
    """The server's code for an error mongomock raised (often none)."""
    msg = str(exc)
    if "the (immutable) field '_id'" in msg or \
            'The _id field cannot be changed' in msg:
        return 66
    return getattr(exc, 'code', None) or 2


def _move_id_first(doc):
    if '_id' in doc and next(iter(doc)) != '_id':
        return {'_id': doc['_id'],
                **{k: v for k, v in doc.items() if k != '_id'}}
    return doc


def _validate_update(u):
    if isinstance(u, list):
        raise CommandError(2, 'pipeline-style updates are not supported by '
                           'the development server')
    if not isinstance(u, dict):
        raise CommandError(14, "update must be an object, got '%s'"
                           % engine_mod.bson_type_name(u))
    dollars = [k for k in u if k[:1] == '$']
    if dollars:
        for k in u:
            if k not in UPDATE_OPERATORS:
                raise CommandError(9, "Unknown modifier: %s. Expected a valid "
                                   "update modifier or pipeline-style update "
                                   "specified as an array" % k)
            if not isinstance(u[k], dict):
                raise CommandError(9, "Modifiers operate on fields but we "
                                   "found type %s instead. For example: "
                                   "{$mod: {<field>: ...}} not {%s: %s}"
                                   % (engine_mod.bson_type_name(u[k]), k, u[k]))


_END = object()


class Cursor:
    """Results not yet returned: an iterator that copies (a find: encodes)
    documents as they are batched, plus the one document read ahead to
    know if more remain."""

    __slots__ = ('cursor_id', 'ns', 'source', 'ahead', 'time_left')

    def __init__(self, ns, source):
        self.cursor_id = 0
        self.ns = ns
        # What is left of the maxTimeMS of the command that opened it: on
        # mongod the limit covers the cursor's whole life.
        self.time_left = None
        self.source = iter(source)
        self.ahead = next(self.source, _END)

    def exhausted(self):
        return self.ahead is _END

    def take(self):
        doc = self.ahead
        self.ahead = next(self.source, _END)
        return doc


class Connection:
    """What a command handler may know about its client."""

    __slots__ = ('conn_id', 'peer', 'drop', 'request_size')

    def __init__(self, conn_id, peer):
        self.conn_id = conn_id
        self.peer = peer
        self.drop = None  # closes the client's socket, when set
        # bytes of the request being served: below 16 MiB, no document in
        # it can be too large, and the server need not measure them
        self.request_size = 0


class Commands:
    """Runs commands against one engine, one at a time."""

    def __init__(self, verbose=False, replset=None):
        self.engine = engine_mod.Engine()
        self.replset = replset
        self.lock = threading.Lock()
        # counts of the commands run outside the lock (HANDSHAKE_COMMANDS)
        self.stats_lock = threading.Lock()
        self.cursors = {}
        self.verbose = verbose
        self.started = time.monotonic()
        self.random = random.Random()
        self.connections = 0
        # Commands run, by 'collection.command' (or '$cmd.command'), for the
        # cost measurements in docs/scaling.md.
        self.counts = collections.Counter()
        # seconds spent running each command under the lock
        self.seconds = collections.Counter()
        # slow mode's prices and the log of recent operations (cost.py)
        self.slow = cost.Slow()
        self.oplog = cost.OpLog()
        self.table = {
            'hello': self.cmd_hello,
            'isMaster': self.cmd_hello,
            'ismaster': self.cmd_hello,
            'ping': self.cmd_ping,
            'buildInfo': self.cmd_build_info,
            'buildinfo': self.cmd_build_info,
            'getLastError': self.cmd_get_last_error,
            'endSessions': self.cmd_end_sessions,
            'devStepDown': self.cmd_dev_step_down,
            'devCommandCounts': self.cmd_dev_command_counts,
            'killAllSessions': self.cmd_ping,
            'whatsmyuri': self.cmd_whatsmyuri,
            'serverStatus': self.cmd_server_status,
            'connectionStatus': self.cmd_connection_status,
            'insert': self.cmd_insert,
            'find': self.cmd_find,
            'getMore': self.cmd_get_more,
            'killCursors': self.cmd_kill_cursors,
            'update': self.cmd_update,
            'delete': self.cmd_delete,
            'findAndModify': self.cmd_find_and_modify,
            'findandmodify': self.cmd_find_and_modify,
            'count': self.cmd_count,
            'aggregate': self.cmd_aggregate,
            'distinct': self.cmd_distinct,
            'createIndexes': self.cmd_create_indexes,
            'listIndexes': self.cmd_list_indexes,
            'dropIndexes': self.cmd_drop_indexes,
            'deleteIndexes': self.cmd_drop_indexes,
            'listCollections': self.cmd_list_collections,
            'listDatabases': self.cmd_list_databases,
            'drop': self.cmd_drop,
            'dropDatabase': self.cmd_drop_database,
            'create': self.cmd_create,
        }
        self.streams = changestream.Streams(self)
        self.table.update(self.streams.table())
        devadmin.register(self)

    # -- dispatch -------------------------------------------------------

    def run(self, db, cmd, conn):
        """Runs one command document; always returns a reply document."""
        if not cmd:
            return CommandError(59, "no such command: ''").reply()
        name = next(iter(cmd))
        handler = self.table.get(name)
        if handler is None:
            return CommandError(59, "no such command: '%s'" % name).reply()
        started = time.monotonic()
        target = cmd[name] if isinstance(cmd[name], str) else '$cmd'
        rs = self.replset
        stepdowns = None
        if rs is not None:
            self._await_hello(rs, name, cmd)
            stepdowns = rs.stepdowns
        try:
            op = self._new_op(name, db, target, cmd, conn)
        except CommandError as exc:
            return exc.reply()
        key = '%s.%s' % (target, name)
        if name in HANDSHAKE_COMMANDS:
            # mongod answers a handshake or monitoring hello without waiting
            # for the locks of other operations, however long they run: a
            # slow scan delays the queries behind it, not the drivers'
            # view of the server (which would time out connections that
            # real servers keep).
            with self.stats_lock:
                self.counts[key] += 1
            try:
                return handler(db, cmd, conn)
            except CommandError as exc:
                return exc.reply()
        with self.lock:
            op.started = time.monotonic()
            self.engine.op = op
            try:
                self.counts[key] += 1
                if rs is None:
                    reply = self._guarded(handler, db, cmd, conn)
                else:
                    reply = self._run_member(rs, handler, name, db, cmd,
                                             conn, stepdowns)
            finally:
                self.engine.op = self.engine.idle_op
            ended = time.monotonic()
            self.seconds[key] += ended - op.started
            self.oplog.record(op, ended, _reply_code(reply))
        if self.verbose:
            log('conn %d: %s.%s %r -> %s (%.1f ms)' % (
                conn.conn_id, db, name, cmd[name],
                'ok' if reply.get('ok') else 'error %s: %s' % (
                    reply.get('code'), reply.get('errmsg')),
                (time.monotonic() - started) * 1000))
        return reply

    @staticmethod
    def _await_hello(rs, name, cmd):
        """An awaitable hello (a driver's streaming monitor) waits for a
        change of state, as mongod does, instead of answering at once."""
        if name not in ('hello', 'isMaster', 'ismaster'):
            return
        tv = cmd.get('topologyVersion')
        wait = cmd.get('maxAwaitTimeMS')
        if not isinstance(tv, dict) or tv.get('processId') != rs.process_id \
                or isinstance(wait, bool) or not isinstance(wait, int):
            return
        counter = tv.get('counter')
        if isinstance(counter, int):
            rs.wait_for_change(int(counter), min(int(wait), 600000))

    def _run_member(self, rs, handler, name, db, cmd, conn, arrived):
        """Runs a command as the replica-set member: refused in the wrong
        state, answered again when it is a retry of a write already done."""
        if 'startTransaction' in cmd or 'autocommit' in cmd:
            return CommandError(263, 'multi-document transactions are not '
                                'supported by the development server').reply()
        refusal = rs.check(name, cmd, arrived)
        if refusal is not None:
            return refusal
        key = txn = None
        if name in replset_mod.WRITE_COMMANDS:
            key = rs.session_key(cmd)
            txn = cmd.get('txnNumber')
            if isinstance(txn, bool) or not isinstance(txn, int):
                txn = None
        if key is not None and txn is not None:
            before = rs.retried(key, int(txn))
            if before is not None:
                if self.verbose:
                    log('retry of txnNumber %d answered from the session'
                        % txn)
                return before
        reply = self._guarded(handler, db, cmd, conn)
        if key is not None and txn is not None and reply.get('ok'):
            rs.remember(key, int(txn), reply)
        return rs.after_write(name, cmd, reply)

    def _new_op(self, name, db, target, cmd, conn):
        """The account of one command, its clock started on arrival."""
        arrived = time.monotonic()
        mt = cmd.get('maxTimeMS')
        if mt is None:
            mt = 0
        elif name == 'getMore' and not isinstance(mt, bool) and \
                isinstance(mt, (int, float)) and mt >= 0:
            # As mongod: a getMore's maxTimeMS is how long an awaitData
            # cursor (a change stream) waits for more, never a limit that
            # fails it; a cursor's own limit is its opener's (time_left).
            mt = 0
        elif isinstance(mt, bool) or not isinstance(mt, (int, float)) or \
                (isinstance(mt, float) and not mt.is_integer()):
            raise CommandError(2, 'maxTimeMS must be a number')
        elif not 0 <= mt <= 2147483647:
            raise CommandError(2, 'maxTimeMS out of range')
        ns = db if target == '$cmd' else '%s.%s' % (db, target)
        return cost.Op(name, ns, conn.conn_id, arrived, int(mt), self.slow,
                       self.engine.notablescan)

    def _guarded(self, handler, db, cmd, conn):
        op = self.engine.op
        try:
            op.command()
            reply = handler(db, cmd, conn)
            op.finish()
            return reply
        except cost.MaxTimeExpired:
            return CommandError(50, 'operation exceeded time limit').reply()
        except planner.NoPlan as exc:
            _log_refusal(next(iter(cmd)), exc)
            return CommandError(291, str(exc)).reply()
        except CommandError as exc:
            return exc.reply()
        except DupKeyError as exc:
            return CommandError(11000, str(exc), **exc.details()).reply()
        except mongomock.OperationFailure as exc:
            return CommandError(_error_code(exc), str(exc)).reply()
        except (ValueError, TypeError, KeyError, BSONError,
                NotImplementedError) as exc:
            return CommandError(2, str(exc) or type(exc).__name__).reply()
        except Exception as exc:  # keep serving: report, do not crash
            log('internal error in %s: %s' % (next(iter(cmd)),
                                              traceback.format_exc()))
            return CommandError(1, 'internal error: %s' % exc).reply()

    # -- cursors --------------------------------------------------------

    @staticmethod
    def _batch(cur, count):
        """Encodes up to count documents (all if None) from the cursor,
        stopping short of the reply size limit."""
        out = []
        size = 0
        while not cur.exhausted() and (count is None or len(out) < count):
            raw = cur.ahead
            if type(raw) is not bytes:
                raw = bsonenc.encode(raw)
            if out and size + len(raw) > BATCH_BYTES:
                break
            cur.take()
            out.append(RawBSONDocument(raw))
            size += len(raw)
        return out

    def _cursor_reply(self, ns, docs, batch_size, single_batch=False):
        """The first batch of docs (an iterable); keeps a cursor open on
        the rest unless there is none or single_batch."""
        if batch_size is None:
            batch_size = DEFAULT_FIRST_BATCH
        cur = Cursor(ns, docs)
        first = self._batch(cur, batch_size)
        if not cur.exhausted() and not single_batch:
            op = self.engine.op
            left = op.remaining()
            if left is not None:
                cur.time_left = left - op.debt
            cur.cursor_id = self._new_cursor_id()
            if len(self.cursors) >= MAX_OPEN_CURSORS:
                del self.cursors[next(iter(self.cursors))]
            self.cursors[cur.cursor_id] = cur
        return {'cursor': {'firstBatch': first, 'id': Int64(cur.cursor_id),
                           'ns': ns}, 'ok': 1.0}

    def _new_cursor_id(self):
        while True:
            cid = self.random.getrandbits(62) + 1
            if cid not in self.cursors:
                return cid

    def _cursor_batch_size(self, cmd, cmd_name):
        opt = cmd.get('cursor')
        if opt is None:
            return None
        if not isinstance(opt, dict):
            raise _wrong_type(cmd_name, 'cursor', opt, 'object')
        return _int(opt, cmd_name, 'batchSize', None, 0)

    def cmd_get_more(self, db, cmd, conn):
        cid = cmd['getMore']
        if isinstance(cid, bool) or not isinstance(cid, int):
            raise _wrong_type('getMore', 'getMore', cid, 'long')
        coll = cmd.get('collection')
        if not isinstance(coll, str):
            raise _missing('getMore', 'collection')
        batch_size = _int(cmd, 'getMore', 'batchSize', None, 0) or None
        cur = self.cursors.get(int(cid))
        if cur is None:
            raise CommandError(43, 'cursor id %d not found' % cid)
        ns = '%s.%s' % (db, coll)
        if cur.ns != ns:
            raise CommandError(13, "Requested getMore on namespace '%s', but "
                               "cursor belongs to a different namespace %s"
                               % (ns, cur.ns))
        if isinstance(cur, changestream.StreamCursor):
            return self.streams.get_more(cur, cmd, conn, batch_size)
        op = self.engine.op
        op.set_remaining(cur.time_left)
        try:
            batch = self._batch(cur, batch_size)
            op.finish()
        except (cost.MaxTimeExpired, planner.NoPlan):
            # mongod kills a cursor whose time ran out
            self.cursors.pop(cur.cursor_id, None)
            raise
        if cur.time_left is not None:
            cur.time_left = op.remaining()
        if cur.exhausted():
            del self.cursors[cur.cursor_id]
            cur.cursor_id = 0
        return {'cursor': {'nextBatch': batch, 'id': Int64(cur.cursor_id),
                           'ns': cur.ns}, 'ok': 1.0}

    def cmd_kill_cursors(self, db, cmd, conn):
        _coll_name(cmd, 'killCursors', db)
        ids = cmd.get('cursors')
        if not isinstance(ids, list):
            raise _missing('killCursors', 'cursors')
        killed, not_found = [], []
        for cid in ids:
            if isinstance(cid, int) and self.cursors.pop(int(cid), None):
                killed.append(Int64(cid))
            else:
                not_found.append(cid)
        return {'cursorsKilled': killed, 'cursorsNotFound': not_found,
                'cursorsAlive': [], 'cursorsUnknown': [], 'ok': 1.0}

    # -- handshake and server -------------------------------------------

    def cmd_hello(self, db, cmd, conn):
        reply = {}
        if cmd.get('helloOk'):
            reply['helloOk'] = True
        if next(iter(cmd)) == 'hello':
            reply['isWritablePrimary'] = True
        else:
            reply['ismaster'] = True
        # Standalone: no logicalSessionTimeoutMinutes (drivers then use no
        # sessions) and no topologyVersion (drivers then poll instead of
        # streaming). A replica-set member has both.
        if self.replset is not None:
            reply.update(self.replset.hello_fields(next(iter(cmd)) == 'hello'))
        reply.update(maxBsonObjectSize=MAX_BSON_SIZE,
                     maxMessageSizeBytes=MAX_MESSAGE_SIZE,
                     maxWriteBatchSize=MAX_WRITE_BATCH,
                     localTime=engine_mod._now_millis(),
                     connectionId=conn.conn_id, minWireVersion=0,
                     maxWireVersion=MAX_WIRE_VERSION, readOnly=False, ok=1.0)
        return reply

    def cmd_ping(self, db, cmd, conn):
        return {'ok': 1.0}

    def cmd_end_sessions(self, db, cmd, conn):
        ids = cmd.get('endSessions')
        if not isinstance(ids, list):
            raise _wrong_type('endSessions', 'endSessions', ids, 'array')
        if self.replset is not None:
            self.replset.end_sessions(ids)
        return {'ok': 1.0}

    def cmd_dev_command_counts(self, db, cmd, conn):
        """{devCommandCounts: 1, reset: bool}: the development server's own
        count of the commands run since it started (or the last reset), by
        'collection.command' over all databases, and the seconds each
        spent running (under the engine's lock)."""
        counts = dict(self.counts)
        seconds = dict(self.seconds)
        if _bool(cmd, 'devCommandCounts', 'reset'):
            self.counts.clear()
            self.seconds.clear()
        return {'counts': counts, 'seconds': seconds, 'ok': 1.0}

    def cmd_dev_step_down(self, db, cmd, conn):
        """{devStepDown: seconds, firstWrite: 'none' | 'writeConcernError'
        | 'interrupt'}: the development server's own step-down. 'none' steps
        down at once; the others when the next write arrives, which is then
        applied and answered with a writeConcernError, or interrupted.
        Answers the member's state; {devStepDown: -1} only reports it."""
        if db != 'admin':
            raise CommandError(13, 'devStepDown may only be run against the '
                               'admin database.')
        if self.replset is None:
            raise CommandError(76, 'not running with --replSet')
        secs = cmd['devStepDown']
        if isinstance(secs, bool) or not isinstance(secs, (int, float)):
            raise _wrong_type('devStepDown', 'devStepDown', secs, 'double')
        first = cmd.get('firstWrite', 'none')
        if first not in replset_mod.FIRST_WRITE_MODES:
            raise CommandError(2, "devStepDown.firstWrite must be one of %s"
                               % ', '.join(replset_mod.FIRST_WRITE_MODES))
        if secs >= 0:
            self.replset.step_down(float(secs), first)
            log('stepping down for %g s (first write: %s)' % (secs, first))
        out = self.replset.state()
        out['ok'] = 1.0
        return out

    def cmd_build_info(self, db, cmd, conn):
        return {'version': SERVER_VERSION, 'gitVersion': 'devmongo',
                'versionArray': [5, 0, 0, 0], 'bits': 64, 'debug': False,
                'maxBsonObjectSize': MAX_BSON_SIZE,
                'storageEngines': ['devmongo'], 'ok': 1.0}

    def cmd_get_last_error(self, db, cmd, conn):
        return {'connectionId': conn.conn_id, 'n': 0, 'syncMillis': 0,
                'writtenTo': None, 'err': None, 'ok': 1.0}

    def cmd_whatsmyuri(self, db, cmd, conn):
        return {'you': conn.peer, 'ok': 1.0}

    def cmd_connection_status(self, db, cmd, conn):
        return {'authInfo': {'authenticatedUsers': [],
                             'authenticatedUserRoles': []}, 'ok': 1.0}

    def cmd_server_status(self, db, cmd, conn):
        return {'host': 'devmongo', 'version': SERVER_VERSION,
                'process': 'devmongo', 'pid': Int64(os.getpid()),
                'uptime': time.monotonic() - self.started,
                'localTime': engine_mod._now_millis(),
                'connections': {'current': self.connections},
                'ok': 1.0}

    # -- writes ---------------------------------------------------------

    def _statements(self, cmd, cmd_name, field):
        stmts = cmd.get(field)
        if stmts is None:
            raise _missing(cmd_name, field)
        if not isinstance(stmts, list):
            raise _wrong_type(cmd_name, field, stmts, 'array')
        if not 1 <= len(stmts) <= MAX_WRITE_BATCH:
            raise CommandError(16, 'Write batch sizes must be between 1 and '
                               '%d. Got %d operations.' % (MAX_WRITE_BATCH,
                                                            len(stmts)))
        for st in stmts:
            if not isinstance(st, dict):
                raise _wrong_type(cmd_name, field, st, 'object')
        return stmts

    @staticmethod
    def _write_error(index, exc):
        if isinstance(exc, DupKeyError):
            out = {'index': index, 'code': 11000}
            out.update(exc.details())
            out['errmsg'] = str(exc)
            return out
        if isinstance(exc, CommandError):
            return {'index': index, 'code': exc.code, 'errmsg': exc.errmsg}
        if isinstance(exc, planner.NoPlan):
            _log_refusal('write statement %d' % index, exc)
            return {'index': index, 'code': 291, 'errmsg': str(exc)}
        return {'index': index, 'code': _error_code(exc), 'errmsg': str(exc)}

    _STATEMENT_ERRORS = (CommandError, mongomock.OperationFailure, ValueError,
                         TypeError, KeyError, BSONError, NotImplementedError,
                         planner.NoPlan)

    def cmd_insert(self, db, cmd, conn):
        name = _coll_name(cmd, 'insert', db)
        docs = self._statements(cmd, 'insert', 'documents')
        ordered = _bool(cmd, 'insert', 'ordered', True)
        coll, _ = self.engine.collection(db, name, create=True)
        insert = coll.dev_insert
        big = conn.request_size > engine_mod.MAX_USER_SIZE
        # no document is bigger than the request it came in (an _id the
        # server adds: 17 bytes)
        bound = conn.request_size + 17 if conn.request_size else None
        n = 0
        errors = []
        for i, doc in enumerate(docs):
            try:
                insert(doc, big, False, bound)
                n += 1
            except self._STATEMENT_ERRORS as exc:
                errors.append(self._write_error(i, exc))
                if ordered:
                    break
        reply = {'n': n}
        if errors:
            reply['writeErrors'] = errors
        reply['ok'] = 1.0
        return reply

    def cmd_update(self, db, cmd, conn):
        name = _coll_name(cmd, 'update', db)
        stmts = self._statements(cmd, 'update', 'updates')
        ordered = _bool(cmd, 'update', 'ordered', True)
        n = n_modified = 0
        upserted = []
        errors = []
        for i, st in enumerate(stmts):
            try:
                r = self._update_one_statement(db, name, st)
            except self._STATEMENT_ERRORS as exc:
                errors.append(self._write_error(i, exc))
                if ordered:
                    break
                continue
            n += r['n']
            n_modified += r['nModified']
            if r['upserted'] is not None:
                upserted.append({'index': i, '_id': r['upserted']})
        reply = {'n': n, 'nModified': n_modified}
        if upserted:
            reply['upserted'] = upserted
        if errors:
            reply['writeErrors'] = errors
        reply['ok'] = 1.0
        return reply

    def _update_one_statement(self, db, name, st):
        q = _doc(st, 'update.updates', 'q', required=True)
        if 'u' not in st:
            raise _missing('update.updates', 'u')
        u = st['u']
        _validate_update(u)
        upsert = _bool(st, 'update.updates', 'upsert')
        multi = _bool(st, 'update.updates', 'multi')
        if st.get('arrayFilters'):
            raise CommandError(2, 'arrayFilters are not supported by the '
                               'development server')
        if multi and u and next(iter(u))[:1] != '$':
            raise CommandError(9, 'multi update is not supported for '
                               'replacement-style update')
        coll, _ = self.engine.collection(db, name, create=upsert)
        if coll is None:
            return {'n': 0, 'nModified': 0, 'upserted': None}
        matched = None
        if multi:
            # A look ahead, not part of the operation: charged nothing.
            op, self.engine.op = self.engine.op, self.engine.idle_op
            try:
                matched = [d['_id'] for d in coll._iter_documents(q)]
            finally:
                self.engine.op = op
        try:
            return coll._update(q, u, upsert=upsert, multi=multi)
        finally:
            if matched is not None and len(matched) > 1:
                # mongomock puts the same update value objects into every
                # document it updates; give each its own.
                docs = coll.documents
                for doc_id in matched:
                    key = engine_mod.store_key(doc_id)
                    if key in docs:
                        docs[key] = copy.deepcopy(docs[key])

    def cmd_delete(self, db, cmd, conn):
        name = _coll_name(cmd, 'delete', db)
        stmts = self._statements(cmd, 'delete', 'deletes')
        ordered = _bool(cmd, 'delete', 'ordered', True)
        coll, _ = self.engine.collection(db, name)
        n = 0
        errors = []
        for i, st in enumerate(stmts):
            try:
                q = _doc(st, 'delete.deletes', 'q', required=True)
                limit = _int(st, 'delete.deletes', 'limit', None)
                if limit is None:
                    raise _missing('delete.deletes', 'limit')
                if limit not in (0, 1):
                    raise CommandError(9, 'The limit field in delete objects '
                                       'must be 0 or 1. Got %d' % limit)
                if coll is not None:
                    n += coll.dev_delete(q, limit)
            except self._STATEMENT_ERRORS as exc:
                errors.append(self._write_error(i, exc))
                if ordered:
                    break
        reply = {'n': n}
        if errors:
            reply['writeErrors'] = errors
        reply['ok'] = 1.0
        return reply

    def cmd_find_and_modify(self, db, cmd, conn):
        cmd_name = next(iter(cmd))
        name = _coll_name(cmd, cmd_name, db)
        query = _doc(cmd, cmd_name, 'query', {})
        sort = _sort_list(_doc(cmd, cmd_name, 'sort'), cmd_name)
        fields = _doc(cmd, cmd_name, 'fields')
        remove = _bool(cmd, cmd_name, 'remove')
        new = _bool(cmd, cmd_name, 'new')
        upsert = _bool(cmd, cmd_name, 'upsert')
        update = cmd.get('update')
        if remove:
            if update is not None:
                raise CommandError(9, 'Cannot specify both an update and '
                                   'remove=true')
            if new:
                raise CommandError(9, "Cannot specify both new=true and "
                                   "remove=true; 'remove' always returns the "
                                   "deleted document")
            if upsert:
                raise CommandError(9, 'Cannot specify both upsert=true and '
                                   'remove=true')
        elif update is None:
            raise CommandError(9, 'Either an update or remove=true must be '
                               'specified')
        else:
            _validate_update(update)
        if cmd.get('arrayFilters'):
            raise CommandError(2, 'arrayFilters are not supported by the '
                               'development server')
        coll, _ = self.engine.collection(db, name, create=upsert)
        self.engine.op.sort = sort

        def project(doc):
            if doc is None:
                return None
            if not fields:
                return copy.deepcopy(doc)
            return coll._copy_only_fields(doc, dict(fields), dict)

        doc = coll.dev_find_first(query, sort) if coll is not None else None
        if doc is None and not upsert:
            leo = {'n': 0} if remove else {'n': 0, 'updatedExisting': False}
            return {'lastErrorObject': leo, 'value': None, 'ok': 1.0}
        if remove:
            value = project(doc)
            coll.remove_document(doc)
            return {'lastErrorObject': {'n': 1}, 'value': value, 'ok': 1.0}
        if doc is not None:
            doc_id = doc['_id']
            before = None if new else project(doc)
            spec = dict(query)
            spec['_id'] = doc_id
            coll._update(spec, update, upsert=False)
            after = coll.documents.get(engine_mod.store_key(doc_id))
            return {'lastErrorObject': {'n': 1, 'updatedExisting': True},
                    'value': project(after) if new else before, 'ok': 1.0}
        r = coll._update(query, update, upsert=True)
        doc_id = r['upserted']
        after = coll.documents.get(engine_mod.store_key(doc_id))
        return {'lastErrorObject': {'n': 1, 'updatedExisting': False,
                                    'upserted': doc_id},
                'value': project(after) if new else None, 'ok': 1.0}

    # -- reads ----------------------------------------------------------

    def cmd_find(self, db, cmd, conn):
        name = _coll_name(cmd, 'find', db)
        spec = _doc(cmd, 'find', 'filter', {})
        sort = _sort_list(_doc(cmd, 'find', 'sort'), 'find')
        projection = _doc(cmd, 'find', 'projection') or None
        skip = _int(cmd, 'find', 'skip', 0, 0)
        limit = _int(cmd, 'find', 'limit', 0, 0)
        batch_size = _int(cmd, 'find', 'batchSize', None, 0)
        single = _bool(cmd, 'find', 'singleBatch')
        coll, _ = self.engine.collection(db, name)
        self.engine.op.sort = sort
        docs = ()
        if coll is not None:
            # Each result is encoded (no copy) as batches go out; a sort
            # reads all at once.
            found = coll.dev_find_encoded(spec, sort, projection)
            docs = itertools.islice(found, skip,
                                    skip + limit if limit else None)
        if limit and batch_size is not None and batch_size > limit:
            batch_size = limit
        return self._cursor_reply('%s.%s' % (db, name), docs, batch_size,
                                  single)

    def cmd_count(self, db, cmd, conn):
        name = _coll_name(cmd, 'count', db)
        spec = _doc(cmd, 'count', 'query', {})
        skip = _int(cmd, 'count', 'skip', 0, 0)
        limit = _int(cmd, 'count', 'limit', 0)
        coll, _ = self.engine.collection(db, name)
        n = 0
        if coll is not None:
            n = coll.dev_count(spec, fast=not skip and not limit)
        n = max(n - skip, 0)
        if limit:
            n = min(n, abs(limit))
        return {'n': n, 'ok': 1.0}

    def cmd_distinct(self, db, cmd, conn):
        name = _coll_name(cmd, 'distinct', db)
        key = cmd.get('key')
        if not isinstance(key, str):
            raise _missing('distinct', 'key')
        spec = _doc(cmd, 'distinct', 'query', {})
        coll, _ = self.engine.collection(db, name)
        values = []
        if coll is not None:
            values = coll.find(spec).distinct(key)
        return {'values': values, 'ok': 1.0}

    def cmd_aggregate(self, db, cmd, conn):
        if changestream.first_stage(cmd):
            return self.streams.aggregate(db, cmd, conn)
        if not isinstance(cmd['aggregate'], str):
            raise CommandError(2, '{aggregate: 1} is not supported by the '
                               'development server')
        name = _coll_name(cmd, 'aggregate', db)
        pipeline = cmd.get('pipeline')
        if not isinstance(pipeline, list):
            raise _missing('aggregate', 'pipeline')
        for stage in pipeline:
            if not isinstance(stage, dict) or len(stage) != 1:
                raise CommandError(40323, 'A pipeline stage specification '
                                   'object must contain exactly one field.')
            op = next(iter(stage))
            if op in ('$out', '$merge'):
                raise CommandError(2, '%s is not supported by the development '
                                   'server' % op)
        if 'cursor' not in cmd and not cmd.get('explain'):
            raise CommandError(9, "The 'cursor' option is required, except "
                               "for aggregate with the explain argument")
        batch_size = self._cursor_batch_size(cmd, 'aggregate')
        coll, _ = self.engine.collection(db, name)
        docs = [_move_id_first(d) for d in engine_mod.run_pipeline(
            coll, self.engine.database(db), pipeline)]
        return self._cursor_reply('%s.%s' % (db, name), docs, batch_size)

    # -- collections and indexes ----------------------------------------

    @staticmethod
    def _index_spec(raw):
        if not isinstance(raw, dict):
            raise CommandError(14, "index specification must be an object, "
                               "got '%s'" % engine_mod.bson_type_name(raw))
        key = raw.get('key')
        if not isinstance(key, dict) or not key:
            raise CommandError(67, "Error in specification %s :: caused by "
                               ":: The 'key' field is a required property of "
                               "an index specification" % raw)
        for field, direction in key.items():
            ok = isinstance(direction, str) or (
                isinstance(direction, (int, float)) and
                not isinstance(direction, bool) and direction != 0)
            if not ok:
                raise CommandError(67, "Error in specification %s :: caused "
                                   "by :: Values in the index key pattern "
                                   "can contain only non-zero numbers or "
                                   "strings, got '%s' for field '%s'"
                                   % (raw, direction, field))
        name = raw.get('name')
        if name is None:
            name = '_'.join('%s_%s' % (f, d) for f, d in key.items())
        if not isinstance(name, str) or not name:
            raise CommandError(67, "Error in specification %s :: caused by "
                               ":: The 'name' field must be a non-empty "
                               "string" % raw)
        spec = {'v': 2, 'key': key, 'name': name}
        for opt in INDEX_OPTIONS:
            if opt in raw and not (opt in ('unique', 'sparse', 'hidden') and
                                   not raw[opt]):
                spec[opt] = raw[opt]
        if 'partialFilterExpression' in spec and not isinstance(
                spec['partialFilterExpression'], dict):
            raise CommandError(67, "Error in specification %s :: caused by "
                               ":: 'partialFilterExpression' must be an "
                               "object" % raw)
        return spec

    @staticmethod
    def _same_options(a, b):
        return all(a.get(o) == b.get(o) for o in INDEX_OPTIONS)

    def _add_index(self, coll, spec):
        """Adds one index; False if an identical one exists."""
        name = spec['name']
        key_items = list(spec['key'].items())
        if name == '_id_' or key_items == [('_id', 1)]:
            if key_items != [('_id', 1)] or name != '_id_':
                raise CommandError(85, 'Index already exists with a '
                                   'different name: _id_')
            return False
        existing = coll.catalog.get(name)
        if existing is not None:
            if list(existing['key'].items()) != key_items:
                raise CommandError(86, 'An existing index has the same name '
                                   'as the requested index. Requested index: '
                                   '%s, existing index: %s' % (spec, existing))
            if not self._same_options(existing, spec):
                raise CommandError(85, 'An equivalent index already exists '
                                   'with the same name but different '
                                   'options. Requested index: %s, existing '
                                   'index: %s' % (spec, existing))
            return False
        for other in coll.catalog.values():
            if list(other['key'].items()) == key_items and \
                    self._same_options(other, spec):
                raise CommandError(85, 'Index already exists with a '
                                   'different name: %s' % other['name'])
        if spec.get('unique'):
            try:
                coll.add_unique_index(name, key_items,
                                      bool(spec.get('sparse')),
                                      spec.get('partialFilterExpression'))
            except DupKeyError as exc:
                raise CommandError(11000, 'Index build failed: collection '
                                   '%s :: caused by :: %s' % (coll.ns, exc),
                                   **exc.details()) from None
        coll.catalog[name] = spec
        return True

    def cmd_create_indexes(self, db, cmd, conn):
        name = _coll_name(cmd, 'createIndexes', db)
        raw = cmd.get('indexes')
        if not isinstance(raw, list):
            raise _missing('createIndexes', 'indexes')
        if not raw:
            raise CommandError(2, 'Must specify at least one index to create')
        specs = [self._index_spec(r) for r in raw]
        coll, created = self.engine.collection(db, name, create=True)
        before = 1 + len(coll.catalog)
        added = 0
        for spec in specs:
            added += self._add_index(coll, spec)
        reply = {'numIndexesBefore': before,
                 'numIndexesAfter': 1 + len(coll.catalog),
                 'createdCollectionAutomatically': created}
        if not added:
            reply['note'] = 'all indexes already exist'
        reply['ok'] = 1.0
        return reply

    def cmd_list_indexes(self, db, cmd, conn):
        name = _coll_name(cmd, 'listIndexes', db)
        batch_size = self._cursor_batch_size(cmd, 'listIndexes')
        coll, _ = self.engine.collection(db, name)
        if coll is None:
            raise CommandError(26, 'ns does not exist: %s.%s' % (db, name))
        docs = [{'v': 2, 'key': {'_id': 1}, 'name': '_id_'}]
        docs.extend(copy.deepcopy(s) for s in coll.catalog.values())
        return self._cursor_reply('%s.%s' % (db, name), docs, batch_size)

    def cmd_drop_indexes(self, db, cmd, conn):
        cmd_name = next(iter(cmd))
        name = _coll_name(cmd, cmd_name, db)
        coll, _ = self.engine.collection(db, name)
        if coll is None:
            raise CommandError(26, 'ns not found %s.%s' % (db, name))
        which = cmd.get('index')
        was = 1 + len(coll.catalog)
        if which == '*':
            names = list(coll.catalog)
        elif isinstance(which, str):
            names = [which]
        elif isinstance(which, list) and all(isinstance(w, str)
                                             for w in which):
            names = which
        elif isinstance(which, dict):
            names = [n for n, s in coll.catalog.items()
                     if list(s['key'].items()) == list(which.items())]
            if not names:
                if list(which.items()) == [('_id', 1)]:
                    raise CommandError(72, 'cannot drop _id index')
                raise CommandError(27, "can't find index with key: %s"
                                   % engine_mod.format_value(which))
        else:
            raise _missing(cmd_name, 'index')
        for n in names:
            if n == '_id_':
                raise CommandError(72, 'cannot drop _id index')
            if n not in coll.catalog:
                raise CommandError(27, 'index not found with name [%s]' % n)
        for n in names:
            del coll.catalog[n]
            coll.drop_unique_index(n)
        reply = {'nIndexesWas': was}
        if which == '*':
            reply['msg'] = 'non-_id indexes dropped for collection'
        reply['ok'] = 1.0
        return reply

    def cmd_list_collections(self, db, cmd, conn):
        spec = _doc(cmd, 'listCollections', 'filter', {})
        name_only = _bool(cmd, 'listCollections', 'nameOnly')
        batch_size = self._cursor_batch_size(cmd, 'listCollections')
        docs = []
        for name in sorted(self.engine.collections(db)):
            if name_only:
                info = {'name': name, 'type': 'collection'}
            else:
                info = {'name': name, 'type': 'collection', 'options': {},
                        'info': {'readOnly': False},
                        'idIndex': {'v': 2, 'key': {'_id': 1},
                                    'name': '_id_'}}
            if not spec or filter_applies(spec, info):
                docs.append(info)
        return self._cursor_reply('%s.$cmd.listCollections' % db, docs,
                                  batch_size)

    def cmd_list_databases(self, db, cmd, conn):
        name_only = _bool(cmd, 'listDatabases', 'nameOnly')
        dbs = []
        for name in sorted(self.engine.dbs):
            if name_only:
                dbs.append({'name': name})
            else:
                dbs.append({'name': name, 'sizeOnDisk': 0.0, 'empty': False})
        reply = {'databases': dbs}
        if not name_only:
            reply['totalSize'] = 0.0
        reply['ok'] = 1.0
        return reply

    def cmd_drop(self, db, cmd, conn):
        name = _coll_name(cmd, 'drop', db)
        coll, _ = self.engine.collection(db, name)
        if coll is None:
            raise CommandError(26, 'ns not found')
        was = 1 + len(coll.catalog)
        self.engine.drop_collection(db, name)
        # Cursors over the collection end with it, as on a real server.
        ns = '%s.%s' % (db, name)
        for cid in [c for c, cur in self.cursors.items() if cur.ns == ns]:
            del self.cursors[cid]
        return {'nIndexesWas': was, 'ns': ns, 'ok': 1.0}

    def cmd_drop_database(self, db, cmd, conn):
        self.engine.drop_database(db)
        prefix = db + '.'
        for cid in [c for c, cur in self.cursors.items()
                    if cur.ns.startswith(prefix)]:
            del self.cursors[cid]
        return {'dropped': db, 'ok': 1.0}

    def cmd_create(self, db, cmd, conn):
        name = _coll_name(cmd, 'create', db)
        coll, created = self.engine.collection(db, name, create=True)
        if not created:
            raise CommandError(48, 'Collection already exists. NS: %s.%s'
                               % (db, name))
        return {'ok': 1.0}


def _log_refusal(what, exc):
    """Every notablescan refusal goes to the log: it names a query that
    needs an index."""
    log('notablescan: refused %s on %s: filter %s' % (
        what, exc.ns, engine_mod.format_value(exc.filter)))


def _reply_code(reply):
    """The error code of a reply (its first write error's), 0 if none."""
    if not reply.get('ok'):
        return reply.get('code', 1)
    errors = reply.get('writeErrors')
    if errors:
        return errors[0].get('code', 1)
    return 0


def log(line):
    """One line on stderr, written at once so threads do not interleave."""
    stamp = datetime.datetime.utcnow().strftime('%H:%M:%S.%f')[:-3]
    try:
        sys.stderr.write('devmongo %s %s\n' % (stamp, line))
        sys.stderr.flush()
    except OSError:
        pass
