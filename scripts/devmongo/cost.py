"""What an operation costs in the development server, and its time limit.

The server runs one command at a time; this module makes each one take as
long as it would on a real server under load, and stops it where a real
server would. A Slow holds the prices (set at start, changed by the
devSlow admin command): scan_us per document examined (a collection scan,
or a document fetched after an index scan), key_us per index key examined
(by default the same as scan_us: a cold index page costs like a cold
document), write_us per document inserted, updated or deleted, and cmd_ms
for every command. An Op is one command's account: the engine charges it as
it examines and writes, and the Op sleeps off what it owes, a few
milliseconds at a time, never past its maxTimeMS deadline, where it raises
MaxTimeExpired. The deadline counts from the command's arrival, so time
spent waiting behind another command counts too, as it does on mongod. The
OpLog keeps the last operations with their durations for the devOpLog admin
command, so a test can check what the server itself measured.
"""

import collections
import datetime
import time

# Below this debt an Op keeps counting instead of sleeping: time.sleep has
# a granularity of its own.
PAY_EVERY_S = 0.002
# How often (in documents examined) an Op looks at its deadline even with
# nothing owed: the engine's own work takes time too.
CHECK_EVERY = 64

SLOW_FIELDS = ('scan_us', 'key_us', 'write_us', 'cmd_ms')


class MaxTimeExpired(Exception):
    """The operation ran out of its maxTimeMS (code 50)."""


class SlowSpecError(ValueError):
    """A slow-mode setting that cannot be read."""


class Slow:
    """The prices of slow mode; all zero is the quick default."""

    def __init__(self):
        self.scan_us = 0.0
        self.key_us = None  # None: the same as scan_us
        self.write_us = 0.0
        self.cmd_ms = 0.0

    def key_cost_us(self):
        return self.scan_us if self.key_us is None else self.key_us

    def update(self, values):
        """Sets the given prices (a dict of SLOW_FIELDS to numbers >= 0);
        all or nothing."""
        clean = {}
        for name, v in values.items():
            if name not in SLOW_FIELDS:
                raise SlowSpecError("unknown slow-mode setting '%s' (known: "
                                    "%s)" % (name, ', '.join(SLOW_FIELDS)))
            if name == 'key_us' and v is None:
                clean[name] = None
                continue
            if isinstance(v, bool) or not isinstance(v, (int, float)) or \
                    v < 0 or v != v or v > 1e9:
                raise SlowSpecError("slow-mode setting '%s' must be a number "
                                    ">= 0, not %r" % (name, v))
            clean[name] = float(v)
        for name, v in clean.items():
            setattr(self, name, v)

    def update_from_text(self, text):
        """Reads 'scan_us=35,write_us=10,cmd_ms=2' (empty: no change)."""
        values = {}
        for part in (text or '').split(','):
            part = part.strip()
            if not part:
                continue
            name, eq, raw = part.partition('=')
            if not eq:
                raise SlowSpecError("slow-mode setting '%s' is not NAME=VALUE"
                                    % part)
            try:
                values[name.strip()] = float(raw)
            except ValueError:
                raise SlowSpecError("slow-mode setting '%s' is not a number"
                                    % part) from None
        self.update(values)

    def as_doc(self):
        """The prices; key_us is None (null) while it follows scan_us."""
        return {'scan_us': self.scan_us, 'key_us': self.key_us,
                'write_us': self.write_us, 'cmd_ms': self.cmd_ms}


class Op:
    """One command's account of cost and time. Runs under the command
    lock; sleeping there is the point (one command at a time)."""

    def __init__(self, name, ns, conn_id, arrived, max_time_ms, slow,
                 notablescan):
        self.name = name
        self.ns = ns
        self.conn_id = conn_id
        self.arrived = arrived
        self.max_time_ms = max_time_ms
        self.deadline = arrived + max_time_ms / 1000.0 if max_time_ms \
            else None
        self.slow = slow
        self.notablescan = notablescan
        self.docs_examined = 0
        self.keys_examined = 0
        self.docs_written = 0
        self.plan = None
        self.sort = None  # the sort a find asks for, for the planner
        self.count_only = False  # a count may be answered from keys alone
        self.debt = 0.0
        self.started = None  # when it got the lock

    def set_remaining(self, seconds):
        """A getMore goes on with what its cursor has left."""
        if seconds is not None:
            self.deadline = time.monotonic() + max(seconds, 0.0)

    def remaining(self):
        if self.deadline is None:
            return None
        return self.deadline - time.monotonic()

    def check(self):
        if self.deadline is not None and time.monotonic() >= self.deadline:
            raise MaxTimeExpired()

    def pay(self):
        """Sleeps off what is owed, up to the deadline."""
        debt, self.debt = self.debt, 0.0
        if debt <= 0:
            self.check()
            return
        if self.deadline is None:
            time.sleep(debt)
            return
        left = self.deadline - time.monotonic()
        if debt < left:
            time.sleep(debt)
            return
        if left > 0:
            time.sleep(left)
        raise MaxTimeExpired()

    def charge(self, seconds):
        self.debt += seconds
        if self.debt >= PAY_EVERY_S:
            self.pay()

    def command(self):
        """The price every command pays on arrival."""
        self.check()
        if self.slow.cmd_ms:
            self.debt += self.slow.cmd_ms / 1000.0
            self.pay()

    def examine(self, docs=0, keys=0):
        self.docs_examined += docs
        self.keys_examined += keys
        cost = docs * self.slow.scan_us + keys * self.slow.key_cost_us()
        if cost:
            self.charge(cost / 1e6)
        elif (self.docs_examined + self.keys_examined) % CHECK_EVERY == 0:
            self.check()

    def wrote(self, docs=1):
        self.docs_written += docs
        if self.slow.write_us:
            self.charge(docs * self.slow.write_us / 1e6)

    def finish(self):
        """Pays the rest at the end of the command."""
        self.pay()


class NullOp(Op):
    """The account of work done outside any command (index builds)."""

    def __init__(self):
        super().__init__('', '', 0, time.monotonic(), 0, Slow(), False)

    def charge(self, seconds):
        pass

    def check(self):
        pass


class OpLog:
    """The last operations, oldest first."""

    def __init__(self, size=20000):
        self.entries = collections.deque(maxlen=size)

    def record(self, op, ended, code):
        started = op.started if op.started is not None else ended
        self.entries.append({
            'op': op.name, 'ns': op.ns, 'conn': op.conn_id,
            'at': datetime.datetime.utcnow() - datetime.timedelta(
                seconds=ended - op.arrived),
            'millis': (ended - op.arrived) * 1000.0,
            'waitMillis': (started - op.arrived) * 1000.0,
            'maxTimeMS': op.max_time_ms or 0,
            'code': code,
            'planSummary': op.plan or '',
            'docsExamined': op.docs_examined,
            'keysExamined': op.keys_examined,
            'docsWritten': op.docs_written,
        })

    def select(self, ns=None, op=None, limit=1000):
        out = [e for e in self.entries
               if (ns is None or e['ns'] == ns) and
               (op is None or e['op'] == op)]
        return out[-limit:] if limit else out

    def clear(self):
        self.entries.clear()
