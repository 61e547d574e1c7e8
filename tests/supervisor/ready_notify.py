#!/usr/bin/env python3
"""What READY=1 means, checked against the built supervisor (the manual page
and the unit say the same): the supervisor sends it once its settings are
valid, its runtime folder is locked, its events and control sockets are
bound and one attempt to create the indexes has ended; it does not wait
for the database. Here the database is a port where nothing listens: the
datagram still comes, the control socket is there when it comes, and the
supervisor then stops cleanly on SIGTERM (exit 0).
Usage: ready_notify.py SUPERVISOR WORKER"""
import os
import select
import signal
import socket
import subprocess
import sys
import tempfile
import time


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there afterwards
    return port


def main():
    supervisor, worker = sys.argv[1], sys.argv[2]
    with tempfile.TemporaryDirectory(prefix="dip-ready-") as tmp:
        os.chmod(tmp, 0o700)
        run, store = os.path.join(tmp, "run"), os.path.join(tmp, "files")
        os.mkdir(store)
        notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        notify.bind(os.path.join(tmp, "notify"))
        env = {
            "PATH": "/usr/bin:/bin",
            "NOTIFY_SOCKET": os.path.join(tmp, "notify"),
            "DEALIMPORT_MONGODB_URI": "mongodb://127.0.0.1:%d/crm"
            "?serverSelectionTimeoutMS=500&connectTimeoutMS=500" % free_port(),
            "DEALIMPORT_STORAGE_URL": "file://" + store,
            "APP_SECRET": "ready-test",
            "DEALIMPORT_RUNTIME_DIR": run,
            "DEALIMPORT_WORKER_PATH": worker,
            "MONGOC_DISABLE_SHM": "1",
        }
        for k in ("ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS"):
            if k in os.environ:
                env[k] = os.environ[k]
        log = open(os.path.join(tmp, "log"), "w+")
        p = subprocess.Popen([supervisor], env=env, stderr=log, stdout=log)
        got, deadline = [], time.monotonic() + 60
        try:
            while "READY=1" not in got and time.monotonic() < deadline:
                if p.poll() is not None:
                    break
                r, _, _ = select.select([notify], [], [], 0.2)
                if r:
                    got += notify.recv(4096).decode().split("\n")
            ctl_there = os.path.exists(os.path.join(run, "control.ipc"))
            events_there = os.path.exists(os.path.join(run, "events.ipc"))
        finally:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
            try:
                rc = p.wait(timeout=60)
            except subprocess.TimeoutExpired:
                p.kill()
                rc = p.wait()
        log.seek(0)
        text = log.read()
        fails = []
        if "READY=1" not in got:
            fails.append("no READY=1 with the database away (got %r)" % got)
        if not ctl_there or not events_there:
            fails.append("READY=1 before the sockets were bound")
        if rc != 0:
            fails.append("exit status %d after SIGTERM" % rc)
        if fails:
            print("\n".join(fails) + "\nlog:\n" + text, file=sys.stderr)
            return 1
        print("READY=1 with the database away, sockets bound; exit 0")
        return 0


if __name__ == "__main__":
    sys.exit(main())
