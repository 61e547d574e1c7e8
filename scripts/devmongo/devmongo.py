#!/usr/bin/python3
"""devmongo: an in-memory MongoDB-wire-compatible server for development.

Usage: /usr/bin/python3 devmongo.py --host 127.0.0.1 --port PORT
           [--replset NAME [--stepdown-secs N]] [--verbose]
           [--slow scan_us=N,key_us=N,write_us=N,cmd_ms=N] [--notablescan]

--slow prices what a server under load makes each command wait for (see
cost.py) and --notablescan refuses what mongod refuses under notablescan
(see planner.py); the devSlow and devNoTableScan admin commands change both
at run time, and devOpLog reports what each operation cost (devadmin.py).
Every command honours maxTimeMS (error 50) counting from its arrival.

Without --replset it answers as a standalone server (no sessions); with it,
as the primary of a one-member replica set NAME with sessions and retryable
writes (see replset.py), which the devstack starts by default. It refuses to
start on another mongomock than the one it was written for. Runs in the
foreground. Once listening it prints exactly one line,
"ready PORT", on stdout (--port 0 picks a free port) and from then on writes
only to stderr, one line per command with --verbose. SIGTERM and SIGINT exit
0 at once; SIGUSR1 closes every client connection (the data and the listener
stay), which tests use to simulate a database dropping its connections;
SIGUSR2 makes a replica-set member step down for --stepdown-secs (the
devStepDown admin command does the same with a choice of duration and of
what happens to the first write). One
thread per connection; commands run one at a time under the engine's lock,
but for the wait of a change stream's getMore (changestream.py), which
releases it.
Signals arrive through a wakeup socket read by the accept loop, so no handler
runs between a connection's bytes and SIGSTOP/SIGCONT need nothing special.

DEVMONGO_PROFILE=PREFIX in its environment profiles each connection's
thread (cProfile) and writes PREFIX.<connection number> when it closes:
where the server's own time goes (read them with python3 -m pstats). A
profiled server is several times slower.
"""

import argparse
import gc
import itertools
import os
import selectors
import signal
import socket
import sys
import threading
import time

import bson

import mongomock

# engine.py wraps mongomock internals of exactly this release: check before
# importing it, so another release fails with one clear line.
MONGOMOCK_VERSION = '4.1.2'
if mongomock.__version__ != MONGOMOCK_VERSION:
    sys.stderr.write('devmongo: refusing to start: written for mongomock %s, '
                     'found %s\n' % (MONGOMOCK_VERSION, mongomock.__version__))
    sys.exit(1)

import commands  # noqa: E402
import cost  # noqa: E402
import replset  # noqa: E402
import wire  # noqa: E402


class Connections:
    """The open client sockets, so SIGUSR1 can close them all."""

    def __init__(self):
        self.lock = threading.Lock()
        self.socks = set()

    def add(self, sock):
        with self.lock:
            self.socks.add(sock)
            return len(self.socks)

    def remove(self, sock):
        with self.lock:
            self.socks.discard(sock)
            return len(self.socks)

    def shutdown_all(self):
        with self.lock:
            socks = list(self.socks)
        for sock in socks:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        return len(socks)


def _shutdown(sock):
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


def _encode(request, reply_id, reply):
    try:
        return wire.encode_reply(request, reply_id, reply)
    except Exception as exc:  # a value bson cannot encode: say so
        err = commands.CommandError(
            10334 if 'too large' in str(exc) else 2,
            'cannot encode reply: %s' % exc).reply()
        return wire.encode_reply(request, reply_id, err)


def serve_connection(sock, conn, server, conns):
    """Reads requests and writes replies until the client or we close."""
    prefix = os.environ.get('DEVMONGO_PROFILE')
    if not prefix:
        _serve_connection(sock, conn, server, conns)
        return
    import cProfile
    profile = cProfile.Profile()
    profile.enable()
    try:
        _serve_connection(sock, conn, server, conns)
    finally:
        profile.disable()
        profile.dump_stats('%s.%d' % (prefix, conn.conn_id))


def _serve_connection(sock, conn, server, conns):
    try:
        while True:
            msg = wire.read_message(sock)
            if msg is None:
                break
            request = wire.parse_request(*msg)
            conn.request_size = len(msg[2])
            if request.legacy_error is None:
                reply = server.commands.run(request.db, request.command, conn)
            else:
                reply = None
            if request.reply_wanted:
                sock.sendall(_encode(request, next(server.reply_ids), reply))
    except wire.ProtocolError as exc:
        commands.log('conn %d: closing: %s' % (conn.conn_id, exc))
    except OSError as exc:
        if server.verbose:
            commands.log('conn %d: %s' % (conn.conn_id, exc))
    finally:
        server.commands.connections = conns.remove(sock)
        sock.close()
        if server.verbose:
            commands.log('conn %d: closed' % conn.conn_id)


class Server:
    def __init__(self, host, port, verbose, set_name=None, stepdown_secs=10,
                 slow='', notablescan=False):
        self.verbose = verbose
        self.reply_ids = itertools.count(1)
        self.conn_ids = itertools.count(1)
        self.conns = Connections()
        family = socket.AF_INET6 if ':' in host else socket.AF_INET
        self.listener = socket.create_server((host, port), family=family,
                                             backlog=128)
        self.listener.setblocking(False)
        self.port = self.listener.getsockname()[1]
        self.replset = None
        if set_name:
            me = '%s:%d' % ('[%s]' % host if ':' in host else host, self.port)
            self.replset = replset.ReplicaSet(set_name, me, stepdown_secs)
        self.commands = commands.Commands(verbose, self.replset)
        self.commands.slow.update_from_text(slow)
        self.commands.engine.notablescan = notablescan

    def accept(self):
        try:
            sock, peer = self.listener.accept()
        except (BlockingIOError, InterruptedError, ConnectionAbortedError):
            return
        except OSError as exc:
            # Out of descriptors, say: the listener stays readable, so
            # pause instead of spinning until a connection closes.
            commands.log('cannot accept: %s' % exc)
            time.sleep(0.1)
            return
        sock.setblocking(True)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn = commands.Connection(next(self.conn_ids),
                                   '%s:%d' % (peer[0], peer[1]))
        conn.drop = lambda: _shutdown(sock)
        self.commands.connections = self.conns.add(sock)
        if self.verbose:
            commands.log('conn %d: accepted from %s' % (conn.conn_id,
                                                        conn.peer))
        threading.Thread(target=serve_connection, daemon=True,
                         name='conn-%d' % conn.conn_id,
                         args=(sock, conn, self, self.conns)).start()

    def step_down(self):
        if self.replset is None:
            commands.log('SIGUSR2: not a replica-set member, ignored')
            return
        with self.commands.lock:
            self.replset.step_down(self.replset.default_secs)
        commands.log('SIGUSR2: stepped down for %g s'
                     % self.replset.default_secs)

    def run(self):
        """Accepts connections and handles signals; returns the exit code."""
        wake_r, wake_w = socket.socketpair()
        wake_r.setblocking(False)
        wake_w.setblocking(False)
        signal.set_wakeup_fd(wake_w.fileno(), warn_on_full_buffer=False)
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1,
                    signal.SIGUSR2):
            signal.signal(sig, lambda signum, frame: None)
        sel = selectors.DefaultSelector()
        sel.register(self.listener, selectors.EVENT_READ)
        sel.register(wake_r, selectors.EVENT_READ)
        sys.stdout.write('ready %d\n' % self.port)
        sys.stdout.flush()
        while True:
            for key, _ in sel.select():
                if key.fileobj is self.listener:
                    self.accept()
                    continue
                try:
                    signums = wake_r.recv(256)
                except BlockingIOError:
                    continue
                for signum in signums:
                    if signum == signal.SIGUSR1:
                        n = self.conns.shutdown_all()
                        if self.verbose:
                            commands.log('SIGUSR1: closed %d connection(s)'
                                         % n)
                    elif signum == signal.SIGUSR2:
                        self.step_down()
                    elif signum in (signal.SIGTERM, signal.SIGINT):
                        self.listener.close()
                        self.conns.shutdown_all()
                        if self.verbose:
                            commands.log('%s: exiting' %
                                         signal.Signals(signum).name)
                        return 0


def main(argv):
    parser = argparse.ArgumentParser(
        description='In-memory MongoDB-wire-compatible development server.')
    parser.add_argument('--host', default='127.0.0.1')
    parser.add_argument('--port', type=int, default=27017,
                        help='TCP port, 0 for a free one (default 27017)')
    parser.add_argument('--replset', metavar='NAME',
                        help='answer as the primary of the one-member '
                        'replica set NAME (default: a standalone server)')
    parser.add_argument('--stepdown-secs', type=float, default=10.0,
                        help='how long SIGUSR2 steps down for (default 10)')
    parser.add_argument('--verbose', action='store_true',
                        help='log one line per command on stderr')
    parser.add_argument('--slow', metavar='PRICES', default='',
                        help='slow mode, as a server under load: '
                        'scan_us=N (per document examined), key_us=N (per '
                        'index key examined, default scan_us), write_us=N '
                        '(per document written), cmd_ms=N (per command); '
                        'the devSlow admin command changes them')
    parser.add_argument('--notablescan', action='store_true',
                        help="refuse queries on the service's collections "
                        "that no index serves, as mongod --setParameter "
                        "notablescan=1 (devNoTableScan switches it)")
    args = parser.parse_args(argv)
    try:
        cost.Slow().update_from_text(args.slow)
    except cost.SlowSpecError as exc:
        parser.error('--slow: %s' % exc)
    # Stored documents are acyclic and live long: collect cycles rarely
    # rather than rescanning a growing heap every 700 allocations.
    gc.set_threshold(50000, 20, 100)
    if not bson.has_c():
        commands.log('warning: bson has no C extension: expect it to be slow')
    try:
        server = Server(args.host, args.port, args.verbose, args.replset,
                        args.stepdown_secs, args.slow, args.notablescan)
    except OSError as exc:
        commands.log("cannot listen on '%s' port %d: %s" % (
            args.host, args.port, exc.strerror or exc))
        return 1
    code = server.run()
    sys.stderr.flush()
    # Connection threads may be mid-command; they hold nothing to save.
    os._exit(code)


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
