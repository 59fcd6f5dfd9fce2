#!/usr/bin/env python3
"""Bulk loading and watching of a real kube-apiserver, for the benchmarks.

Standard library only (http.client + ssl, threads). Authenticates with a
bearer token and trusts only the given CA.

  kube_load.py preload --server URL --cacert F   (token: $KUBE_TOKEN or --token) \\
      [--certs 10000] [--secrets 90000] [--namespaces 100] \\
      [--ca-cert F --ca-key F] [--issuer-namespace certweave] [--concurrency 24]
    Creates NAMESPACES namespaces team-000.., SECRETS unrelated Opaque Secrets
    of ~1 KiB (768 random bytes, base64) spread over them, and - given the CA
    files - Secret <issuer-namespace>/bench-ca, ClusterIssuer bench-ca
    (spec.ca) and CERTS Certificates app-NNNNN (ECDSA P-256, or with --key
    default no privateKey, so RSA-2048; one DNS name)
    issued by it. Prints one JSON line: counts, seconds, bytes.

  kube_load.py wait-ready --server URL --cacert F --count N \\
      [--timeout 900] [--pid PID]
    LIST + WATCH of every Certificate; exits 0 as soon as N of them are
    Ready=True and prints the seconds it waited; exits 1 on timeout or when
    PID (the controller) has exited. Progress goes to stderr.

Bounded: every request has a timeout, failed requests are retried at most
8 times (409 AlreadyExists counts as created), and the waits have deadlines.
"""

import argparse
import base64
import http.client
import json
import os
import ssl
import sys
import threading
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor


class Kube:
    """A tiny Kubernetes REST client; one HTTPS connection per thread."""

    def __init__(self, server, token, cacert, timeout=60):
        url = urllib.parse.urlsplit(server)
        self.host, self.port = url.hostname, url.port or 443
        self.token = token
        self.timeout = timeout
        self.tls = ssl.create_default_context(cafile=cacert)
        self.local = threading.local()

    def _conn(self, fresh=False):
        conn = getattr(self.local, "conn", None)
        if conn is None or fresh:
            if conn is not None:
                conn.close()
            conn = http.client.HTTPSConnection(self.host, self.port, context=self.tls,
                                               timeout=self.timeout)
            self.local.conn = conn
        return conn

    def request(self, method, path, body=None, content_type="application/json"):
        """Returns (status, parsed JSON body or None)."""
        data = None if body is None else json.dumps(body, separators=(",", ":")).encode()
        headers = {"Authorization": f"Bearer {self.token}", "Accept": "application/json"}
        if data is not None:
            headers["Content-Type"] = content_type
        for attempt in range(2):
            conn = self._conn(fresh=attempt > 0)
            try:
                conn.request(method, path, body=data, headers=headers)
                resp = conn.getresponse()
                raw = resp.read()
                break
            except (http.client.HTTPException, OSError):
                if attempt == 1:
                    raise
        try:
            parsed = json.loads(raw) if raw else None
        except ValueError:
            parsed = {"raw": raw[:200].decode(errors="replace")}
        return resp.status, parsed

    def get(self, path):
        status, obj = self.request("GET", path)
        if status == 404:
            return None
        if status != 200:
            raise RuntimeError(f"GET {path}: HTTP {status}: {obj}")
        return obj

    def create(self, path, obj, attempts=8):
        """POST with retries; 409 (already exists) counts as done."""
        delay = 0.2
        for attempt in range(attempts):
            try:
                status, body = self.request("POST", path, obj)
            except (http.client.HTTPException, OSError) as e:
                status, body = 0, str(e)
            if status in (200, 201, 202, 409):
                return status
            if status not in (0, 429, 500, 502, 503, 504) or attempt == attempts - 1:
                raise RuntimeError(f"POST {path}: HTTP {status}: {body}")
            time.sleep(delay)
            delay = min(delay * 2, 5)
        raise AssertionError("unreachable")


def ready(obj):
    conditions = ((obj or {}).get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def b64(data):
    return base64.b64encode(data).decode()


def preload(args, kube):
    started = time.monotonic()
    namespaces = [f"team-{i:03d}" for i in range(args.namespaces)]
    jobs = [("/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
            for ns in namespaces + [args.issuer_namespace]]
    with ThreadPoolExecutor(args.concurrency) as pool:
        list(pool.map(lambda job: kube.create(*job), jobs))

    secret_bytes = 0

    def secrets():
        nonlocal secret_bytes
        for i in range(args.secrets):
            ns = namespaces[i % len(namespaces)]
            obj = {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                   "metadata": {"name": f"unrelated-{i:05d}", "namespace": ns,
                                "labels": {"app": f"svc-{i % 500}"}},
                   "data": {"config": b64(os.urandom(768))}}
            secret_bytes += len(json.dumps(obj, separators=(",", ":")))
            yield f"/api/v1/namespaces/{ns}/secrets", obj

    def certificates():
        for i in range(args.certs):
            ns = namespaces[i % len(namespaces)]
            yield f"/apis/cert-manager.io/v1/namespaces/{ns}/certificates", {
                "apiVersion": "cert-manager.io/v1", "kind": "Certificate",
                "metadata": {"name": f"app-{i:05d}", "namespace": ns},
                "spec": {"secretName": f"app-{i:05d}-tls",
                         "dnsNames": [f"app-{i:05d}.{ns}.example.com"],
                         **({} if args.key == "default" else
                            {"privateKey": {"algorithm": "ECDSA", "size": 256}}),
                         "issuerRef": {"name": "bench-ca", "kind": "ClusterIssuer"}}}

    def run(what, jobs, total):
        t0 = time.monotonic()
        done = 0
        last = t0
        with ThreadPoolExecutor(args.concurrency) as pool:
            # Bounded submission: at most 4x concurrency requests queued.
            pending = []
            for job in jobs:
                pending.append(pool.submit(kube.create, *job))
                if len(pending) >= 4 * args.concurrency:
                    pending.pop(0).result()
                done += 1
                now = time.monotonic()
                if now - last > 15:
                    print(f"   {what}: {done}/{total} after {now - t0:.0f} s", file=sys.stderr)
                    last = now
            for f in pending:
                f.result()
        return time.monotonic() - t0

    secrets_seconds = run("Secrets", secrets(), args.secrets)
    issuer = None
    if args.ca_cert:
        kube.create(f"/api/v1/namespaces/{args.issuer_namespace}/secrets", {
            "apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
            "metadata": {"name": "bench-ca", "namespace": args.issuer_namespace},
            "data": {"tls.crt": b64(open(args.ca_cert, "rb").read()),
                     "tls.key": b64(open(args.ca_key, "rb").read())}})
        kube.create("/apis/cert-manager.io/v1/clusterissuers", {
            "apiVersion": "cert-manager.io/v1", "kind": "ClusterIssuer",
            "metadata": {"name": "bench-ca"}, "spec": {"ca": {"secretName": "bench-ca"}}})
        issuer = "bench-ca"
    certs_seconds = run("Certificates", certificates(), args.certs) if args.certs else 0.0
    print(json.dumps({"namespaces": len(namespaces), "secrets": args.secrets,
                      "certificates": args.certs, "issuer": issuer,
                      "secret_json_bytes": secret_bytes,
                      "secrets_seconds": round(secrets_seconds, 1),
                      "certificates_seconds": round(certs_seconds, 1),
                      "seconds": round(time.monotonic() - started, 1)}))


def wait_ready(args, kube):
    started = time.monotonic()
    deadline = started + args.timeout
    path = "/apis/cert-manager.io/v1/certificates"
    state = {}
    last_report = started

    def alive():
        if not args.pid:
            return True
        try:
            os.kill(args.pid, 0)
            return True
        except OSError:
            return False

    def count():
        return sum(1 for v in state.values() if v)

    while True:
        listing = kube.get(path)
        state = {(o["metadata"]["namespace"], o["metadata"]["name"]): ready(o)
                 for o in listing.get("items", [])}
        rv = listing["metadata"]["resourceVersion"]
        relist = False
        while not relist:
            if count() >= args.count:
                print(f"{time.monotonic() - started:.1f}")
                return 0
            now = time.monotonic()
            if now > deadline:
                print(f"timed out: {count()} of {args.count} Ready after {args.timeout} s",
                      file=sys.stderr)
                return 1
            if not alive():
                print(f"the controller (pid {args.pid}) exited; {count()} Ready", file=sys.stderr)
                return 1
            query = urllib.parse.urlencode({"watch": "1", "resourceVersion": rv,
                                            "allowWatchBookmarks": "true",
                                            "timeoutSeconds": str(max(1, min(30, int(deadline - now))))})
            conn = http.client.HTTPSConnection(kube.host, kube.port, context=kube.tls, timeout=60)
            try:
                conn.request("GET", f"{path}?{query}",
                             headers={"Authorization": f"Bearer {kube.token}"})
                resp = conn.getresponse()
                if resp.status != 200:
                    relist = True
                    continue
                for line in resp:
                    event = json.loads(line)
                    obj = event.get("object") or {}
                    if event.get("type") == "ERROR":
                        relist = True  # e.g. 410 Gone: resourceVersion too old
                        break
                    rv = (obj.get("metadata") or {}).get("resourceVersion", rv)
                    if event.get("type") == "BOOKMARK":
                        continue
                    key = (obj["metadata"]["namespace"], obj["metadata"]["name"])
                    if event["type"] == "DELETED":
                        state.pop(key, None)
                    else:
                        state[key] = ready(obj)
                    if count() >= args.count:
                        break
                    if time.monotonic() - last_report > 15:
                        last_report = time.monotonic()
                        print(f"   {count()}/{args.count} Ready after "
                              f"{last_report - started:.0f} s", file=sys.stderr)
                    if not alive() or time.monotonic() > deadline:
                        break
            except (http.client.HTTPException, OSError, ValueError):
                relist = True
            finally:
                conn.close()


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["preload", "wait-ready"])
    parser.add_argument("--server", required=True)
    parser.add_argument("--token", default=os.environ.get("KUBE_TOKEN"),
                        help="bearer token (default: $KUBE_TOKEN)")
    parser.add_argument("--cacert", required=True)
    parser.add_argument("--certs", type=int, default=10000)
    parser.add_argument("--secrets", type=int, default=90000)
    parser.add_argument("--namespaces", type=int, default=100)
    parser.add_argument("--ca-cert")
    parser.add_argument("--ca-key")
    parser.add_argument("--issuer-namespace", default="certweave")
    parser.add_argument("--concurrency", type=int, default=24)
    parser.add_argument("--key", choices=["ecdsa", "default"], default="ecdsa",
                        help="ecdsa: privateKey ECDSA P-256; default: no privateKey "
                             "(RSA-2048, cert-manager's default)")
    parser.add_argument("--count", type=int)
    parser.add_argument("--timeout", type=float, default=900)
    parser.add_argument("--pid", type=int)
    args = parser.parse_args()
    if not args.token:
        parser.error("no token: pass --token or set KUBE_TOKEN")
    kube = Kube(args.server, args.token, args.cacert)
    if args.command == "preload":
        preload(args, kube)
        return 0
    if args.count is None:
        parser.error("wait-ready needs --count")
    return wait_ready(args, kube)


if __name__ == "__main__":
    sys.exit(main())
