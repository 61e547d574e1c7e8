"""The development server's own admin commands for load and query rules.

{devSlow: {scan_us, key_us, write_us, cmd_ms}} sets slow mode's prices
(cost.Slow; the fields given, the others kept, key_us null to follow
scan_us again; {devSlow: {}} only reports) and answers the prices in force. {devNoTableScan: bool} switches the
notablescan rule (planner.py) on the service's collections, as
`setParameter: {notablescan: ...}` does on mongod, and answers the value
before and now. {devOpLog: 1, ns, op, limit, reset} answers the last
operations (oldest first, at most limit, 1000 by default), each with its
duration in the server's own milliseconds (from its arrival, so with the
time it waited for the lock), its maxTimeMS, error code, plan and the
documents and keys it examined and the documents it wrote; reset empties
the log after reading. All run on the admin database only.
"""

import cost

MAX_LOG_REPLY = 10000


def register(cmds):
    """Adds the handlers to a commands.Commands table."""
    cmds.table['devSlow'] = lambda db, cmd, conn: dev_slow(cmds, db, cmd)
    cmds.table['devNoTableScan'] = \
        lambda db, cmd, conn: dev_no_table_scan(cmds, db, cmd)
    cmds.table['devOpLog'] = lambda db, cmd, conn: dev_op_log(cmds, db, cmd)


def _admin_only(db, name):
    import commands
    if db != 'admin':
        raise commands.CommandError(13, '%s may only be run against the '
                                    'admin database.' % name)


def dev_slow(cmds, db, cmd):
    import commands
    _admin_only(db, 'devSlow')
    spec = cmd['devSlow']
    if not isinstance(spec, dict):
        raise commands.CommandError(14, "devSlow takes a document of prices "
                                    "(%s)" % ', '.join(cost.SLOW_FIELDS))
    try:
        cmds.slow.update(spec)
    except cost.SlowSpecError as exc:
        raise commands.CommandError(2, str(exc)) from None
    if spec:
        commands.log('slow mode: %s' % _describe(cmds.slow))
    out = cmds.slow.as_doc()
    out['ok'] = 1.0
    return out


def _describe(slow):
    return ', '.join('%s=%s' % kv for kv in slow.as_doc().items())


def dev_no_table_scan(cmds, db, cmd):
    import commands
    _admin_only(db, 'devNoTableScan')
    v = cmd['devNoTableScan']
    if not isinstance(v, (bool, int, float)):
        raise commands.CommandError(14, 'devNoTableScan takes a boolean')
    was = cmds.engine.notablescan
    cmds.engine.notablescan = bool(v)
    if was != cmds.engine.notablescan:
        commands.log('notablescan %s' % ('on' if v else 'off'))
    return {'was': was, 'notablescan': cmds.engine.notablescan, 'ok': 1.0}


def dev_op_log(cmds, db, cmd):
    import commands
    _admin_only(db, 'devOpLog')
    ns = cmd.get('ns')
    op = cmd.get('op')
    limit = cmd.get('limit', 1000)
    if ns is not None and not isinstance(ns, str):
        raise commands.CommandError(14, 'devOpLog.ns must be a string')
    if op is not None and not isinstance(op, str):
        raise commands.CommandError(14, 'devOpLog.op must be a string')
    if isinstance(limit, bool) or not isinstance(limit, int) or \
            not 0 < limit <= MAX_LOG_REPLY:
        raise commands.CommandError(2, 'devOpLog.limit must be 1 to %d'
                                    % MAX_LOG_REPLY)
    ops = cmds.oplog.select(ns, op, limit)
    if cmd.get('reset'):
        cmds.oplog.clear()
    return {'ops': ops, 'ok': 1.0}
