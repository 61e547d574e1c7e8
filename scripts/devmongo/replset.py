"""Replica-set mode of the development server: one member, sessions, and
step-downs on request.

In this mode `hello` answers as the primary of a one-member replica set with
logical sessions, so drivers use implicit sessions and retryable writes as
they do against a real replica set. Sessions keep, per lsid, the reply of the
last retryable write (its txnNumber): a retry with the same txnNumber gets
that reply again and changes nothing, a lower one is TransactionTooOld, as on
mongod. A step-down (the devStepDown admin command, or SIGUSR2) makes the
member a secondary for N seconds: writes fail with NotWritablePrimary (10107),
writes that were waiting when it happened with InterruptedDueToReplStateChange
(11602), reads without secondaryOk with NotPrimaryNoSecondaryOk (13435), and
optionally the first write is applied and answered with a writeConcernError
PrimarySteppedDown (189) or is interrupted before it applies. Errors carry
the errorLabels and topologyVersion that mongod 5.0 gives, and the member
comes back as primary with a new electionId. All of it runs under the
command lock, except the wait of an awaitable hello.
"""

import collections
import threading
import time

from bson.int64 import Int64
from bson.objectid import ObjectId

MAX_SESSIONS = 10000
SESSION_TIMEOUT_MINUTES = 30

# Commands that write, so a secondary refuses them.
WRITE_COMMANDS = frozenset([
    'insert', 'update', 'delete', 'findAndModify', 'findandmodify',
    'createIndexes', 'dropIndexes', 'deleteIndexes', 'drop', 'dropDatabase',
    'create',
])
# Commands that read, so a secondary answers them only with secondaryOk.
READ_COMMANDS = frozenset([
    'find', 'count', 'aggregate', 'distinct', 'listIndexes',
    'listCollections', 'listDatabases',
])
# The codes after which mongod labels a retryable write RetryableWriteError.
RETRYABLE_CODES = frozenset([6, 7, 89, 91, 189, 262, 9001, 10107, 11600,
                             11602, 13435, 13436])

FIRST_WRITE_MODES = ('none', 'writeConcernError', 'interrupt')


def _error(code, name, errmsg, labelled, topology_version):
    out = {'ok': 0.0, 'errmsg': errmsg, 'code': code, 'codeName': name,
           'topologyVersion': topology_version}
    if labelled:
        out['errorLabels'] = ['RetryableWriteError']
    return out


def _secondary_ok(cmd):
    pref = cmd.get('$readPreference')
    return isinstance(pref, dict) and pref.get('mode') not in (None,
                                                               'primary')


class ReplicaSet:
    """The member's state. Every method but wait_for_change runs under the
    command lock."""

    def __init__(self, set_name, me, stepdown_secs):
        self.set_name = set_name
        self.me = me
        self.default_secs = stepdown_secs
        self.process_id = ObjectId()
        self.counter = 0
        self.term = 1
        self.primary = True
        self.until = 0.0
        self.first_write = 'none'
        self.pending_secs = 0.0
        self.stepdowns = 0
        self.sessions = collections.OrderedDict()
        self.changed = threading.Condition()

    # -- state --------------------------------------------------------

    def topology_version(self):
        return {'processId': self.process_id, 'counter': Int64(self.counter)}

    def _bump(self):
        self.counter += 1
        with self.changed:
            self.changed.notify_all()

    def refresh(self):
        """Steps up again once the step-down has run out."""
        if not self.primary and time.monotonic() >= self.until:
            self.primary = True
            self.term += 1
            self._bump()
            return True
        return False

    def _step_down_now(self, secs):
        self.primary = False
        self.until = time.monotonic() + max(secs, 0.0)
        self.stepdowns += 1
        self._bump()

    def step_down(self, secs, first_write='none'):
        """Steps down for secs seconds, now or when the next write arrives
        (first_write 'writeConcernError' or 'interrupt')."""
        self.refresh()
        if first_write == 'none':
            self.first_write = 'none'
            self._step_down_now(secs)
        else:
            self.first_write = first_write
            self.pending_secs = secs

    def state(self):
        self.refresh()
        remaining = max(self.until - time.monotonic(), 0.0)
        return {'primary': self.primary, 'term': self.term,
                'secondsLeft': 0.0 if self.primary else remaining,
                'firstWrite': self.first_write}

    def hello_fields(self, is_hello):
        self.refresh()
        out = {}
        if is_hello:
            out['isWritablePrimary'] = self.primary
        else:
            out['ismaster'] = self.primary
        out['secondary'] = not self.primary
        out.update(setName=self.set_name, setVersion=1, hosts=[self.me],
                   me=self.me, topologyVersion=self.topology_version(),
                   logicalSessionTimeoutMinutes=SESSION_TIMEOUT_MINUTES)
        if self.primary:
            out['primary'] = self.me
            out['electionId'] = ObjectId('7fffffff%016x' % self.term)
        return out

    def wait_for_change(self, counter, max_wait_ms):
        """An awaitable hello: waits until the topologyVersion counter moves
        past counter or max_wait_ms pass. Runs outside the command lock."""
        deadline = time.monotonic() + max_wait_ms / 1000.0
        with self.changed:
            while self.counter == counter:
                left = deadline - time.monotonic()
                if not self.primary:
                    left = min(left, self.until - time.monotonic())
                if left <= 0:
                    return
                self.changed.wait(min(left, 1.0))

    # -- commands -----------------------------------------------------

    def check(self, name, cmd, arrived_stepdowns):
        """The refusal a member in this state gives the command, or None.
        arrived_stepdowns: the step-down count when the command arrived."""
        self.refresh()
        labelled = 'txnNumber' in cmd
        if name in WRITE_COMMANDS:
            if arrived_stepdowns != self.stepdowns:
                return _error(11602, 'InterruptedDueToReplStateChange',
                              'operation was interrupted because a node '
                              'stepped down', labelled,
                              self.topology_version())
            if not self.primary:
                return _error(10107, 'NotWritablePrimary', 'not primary',
                              labelled, self.topology_version())
            if self.first_write == 'interrupt':
                self.first_write = 'none'
                self._step_down_now(self.pending_secs)
                return _error(11602, 'InterruptedDueToReplStateChange',
                              'operation was interrupted because a node '
                              'stepped down', labelled,
                              self.topology_version())
        elif name in READ_COMMANDS and not self.primary and \
                not _secondary_ok(cmd):
            return _error(13435, 'NotPrimaryNoSecondaryOk',
                          'not primary and secondaryOk=false', False,
                          self.topology_version())
        return None

    def after_write(self, name, cmd, reply):
        """A write that was applied: on a pending writeConcernError step-down
        its reply gains the writeConcernError and the member steps down."""
        if name not in WRITE_COMMANDS or self.first_write != \
                'writeConcernError' or not reply.get('ok'):
            return reply
        self.first_write = 'none'
        self._step_down_now(self.pending_secs)
        out = dict(reply)
        out['writeConcernError'] = {
            'code': 189, 'codeName': 'PrimarySteppedDown',
            'errmsg': 'Primary stepped down while waiting for replication',
            'errInfo': {'writeConcern': {'w': 1, 'wtimeout': 0}}}
        if 'txnNumber' in cmd:
            out['errorLabels'] = ['RetryableWriteError']
        return out

    # -- sessions -----------------------------------------------------

    @staticmethod
    def session_key(cmd):
        lsid = cmd.get('lsid')
        if not isinstance(lsid, dict) or 'id' not in lsid:
            return None
        return bytes(lsid['id'])

    def retried(self, key, txn):
        """The stored reply when (key, txn) already ran, a refusal when txn
        is older than the session's last, else None."""
        entry = self.sessions.get(key)
        if entry is None:
            return None
        self.sessions.move_to_end(key)
        last_txn, reply = entry
        if txn == last_txn:
            return reply
        if txn < last_txn:
            return {'ok': 0.0, 'code': 225, 'codeName': 'TransactionTooOld',
                    'errmsg': 'Cannot start transaction %d on session with '
                              'transaction %d already started'
                              % (txn, last_txn)}
        return None

    def remember(self, key, txn, reply):
        self.sessions[key] = (txn, reply)
        self.sessions.move_to_end(key)
        while len(self.sessions) > MAX_SESSIONS:
            self.sessions.popitem(last=False)

    def end_sessions(self, ids):
        n = 0
        for lsid in ids:
            if isinstance(lsid, dict) and 'id' in lsid:
                n += self.sessions.pop(bytes(lsid['id']), None) is not None
        return n
