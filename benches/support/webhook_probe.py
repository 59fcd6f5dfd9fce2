#!/usr/bin/env python3
"""Admission latency of a running webhook, sampled while something else
happens (benches/controller_memory.sh: while the controller issues).

    webhook_probe.py --url https://127.0.0.1:PORT/mutate --review FILE \
        [--every 0.01] [--out FILE]

POSTs the AdmissionReview in FILE over one kept-alive HTTPS connection (the
webhook's certificate is not verified: it is the controller's own) every
EVERY seconds until SIGTERM or SIGINT, then prints JSON: count, errors,
p50/p90/p99/max in milliseconds. A request that fails is counted as an
error and the connection is opened again.
"""
import argparse
import http.client
import json
import signal
import ssl
import sys
import time
import urllib.parse


def percentile(sorted_ms, q):
    if not sorted_ms:
        return None
    return round(sorted_ms[min(len(sorted_ms) - 1, int(q * len(sorted_ms)))], 3)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--review", required=True)
    parser.add_argument("--every", type=float, default=0.01)
    parser.add_argument("--out")
    args = parser.parse_args()
    url = urllib.parse.urlsplit(args.url)
    body = open(args.review, "rb").read()
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE

    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    signal.signal(signal.SIGINT, lambda *_: stop.append(1))

    latencies, errors, conn = [], 0, None
    while not stop:
        started = time.perf_counter()
        try:
            if conn is None:
                conn = http.client.HTTPSConnection(url.hostname, url.port, context=context, timeout=10)
            conn.request("POST", url.path, body, {"Content-Type": "application/json"})
            response = conn.getresponse()
            response.read()
            if response.status != 200:
                raise RuntimeError(f"HTTP {response.status}")
            latencies.append((time.perf_counter() - started) * 1e3)
        except Exception:  # noqa: BLE001 - any failure counts as an error
            errors += 1
            conn = None
            time.sleep(0.1)
        left = args.every - (time.perf_counter() - started)
        if left > 0:
            time.sleep(left)
    latencies.sort()
    report = {
        "count": len(latencies),
        "errors": errors,
        "p50_ms": percentile(latencies, 0.50),
        "p90_ms": percentile(latencies, 0.90),
        "p99_ms": percentile(latencies, 0.99),
        "max_ms": round(latencies[-1], 3) if latencies else None,
    }
    text = json.dumps(report)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
