"""Measures the control socket's `status` round trip with and without a
Prometheus scraper polling GET /metrics every 100 ms, in alternating rounds
(so a change in the supervisor's load over time hits both the same), and
prints the percentiles of each. The scraper is a process of its own, so it
shares nothing with the measuring client but the machine. Every scrape is
parsed with prometheus_client's parser.

usage: bench_metrics.py CONTROL_ENDPOINT METRICS_PORT [REQUESTS_PER_ROUND [ROUNDS]]
Runs under Debian's /usr/bin/python3 (python3-zmq, python3-prometheus-client)."""
import json
import multiprocessing
import sys
import time
import urllib.request

import zmq
from prometheus_client.parser import text_string_to_metric_families


def scraper(port, stop, counts):
    url = "http://127.0.0.1:%d/metrics" % port
    n = bad = 0
    worst = 0.0
    nxt = time.monotonic()
    while not stop.is_set():
        t0 = time.monotonic()
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                text = r.read().decode()
            list(text_string_to_metric_families(text))
            n += 1
        except Exception:
            bad += 1
        worst = max(worst, time.monotonic() - t0)
        nxt += 0.1
        stop.wait(max(0.0, nxt - time.monotonic()))
    counts.put((n, bad, worst))


def percentile(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100.0 * (len(xs) - 1))))]


def main():
    endpoint, port = sys.argv[1], int(sys.argv[2])
    per_round = int(sys.argv[3]) if len(sys.argv) > 3 else 100
    rounds = int(sys.argv[4]) if len(sys.argv) > 4 else 6
    ctx = zmq.Context()
    s = ctx.socket(zmq.REQ)
    s.setsockopt(zmq.LINGER, 0)
    s.connect(endpoint)
    req = json.dumps({"v": 1, "cmd": "status"}).encode()
    times = {"without": [], "with": []}
    scrapes = bad = 0
    worst_scrape = 0.0
    for r in range(rounds):
        mode = "without" if r % 2 == 0 else "with"
        proc = None
        if mode == "with":
            stop = multiprocessing.Event()
            counts = multiprocessing.Queue()
            proc = multiprocessing.Process(target=scraper,
                                           args=(port, stop, counts))
            proc.start()
            time.sleep(0.3)  # the scraper under way first
        for _ in range(per_round):
            t0 = time.perf_counter()
            s.send(req)
            if not s.poll(10000):
                sys.exit("bench: no status reply within 10 s")
            reply = json.loads(s.recv())
            times[mode].append(time.perf_counter() - t0)
            if not reply.get("ok"):
                sys.exit("bench: status refused: %s" % reply)
        if proc:
            stop.set()
            n, b, w = counts.get(timeout=10)
            proc.join()
            scrapes += n
            bad += b
            worst_scrape = max(worst_scrape, w)
    print("status round trips: %d per round, %d rounds alternating" %
          (per_round, rounds))
    for mode in ("without", "with"):
        xs = times[mode]
        print("  %-7s scraper: n=%d p50=%.2f ms p90=%.2f ms p99=%.2f ms "
              "max=%.2f ms" % (mode, len(xs), percentile(xs, 50) * 1e3,
                               percentile(xs, 90) * 1e3,
                               percentile(xs, 99) * 1e3, max(xs) * 1e3))
    ratio = percentile(times["with"], 99) / percentile(times["without"], 99)
    print("scrapes: %d parsed, %d failed, slowest %.1f ms" %
          (scrapes, bad, worst_scrape * 1e3))
    print("p99 with / p99 without: %.2f (goal: at most 2)" % ratio)
    return 0 if bad == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
