#!/usr/bin/env python3
"""A small in-memory Kubernetes API server for running `certweave controller`
without a cluster (tests/controller_fake_api.rs, benches/controller_memory.sh).

Python 3.11 standard library only; plain HTTP on 127.0.0.1. Generic over
resources: any `/api/v1/...` or `/apis/GROUP/VERSION/...` path, namespaced or
cluster-scoped, with GET, LIST (labelSelector, fieldSelector on
metadata.name/namespace), WATCH (chunked newline-delimited JSON events, resume
from a resourceVersion, bookmarks, sendInitialEvents), metadata-only
responses (Accept: ...;as=PartialObjectMetadata[List]), POST, PUT (optimistic
concurrency), PATCH (merge, strategic merge, server-side apply, JSON patch),
DELETE (with owner-reference garbage collection) and the /status subresource.

Not modelled: admission, validation, defaulting, field managers and apply
conflicts, namespaces as a precondition, pagination (limit is ignored).

Extras for tests and benchmarks:
  --port 0           bind any free port; the port is printed on stdout's first line
  --preload FILE     newline-delimited JSON objects loaded before serving
  --list-delay S     answer every LIST S seconds late (slow initial lists)
  GET /_fake/stats   object counts, Ready Certificates, request and watch counts
"""

import argparse
import collections
import copy
import json
import random
import re
import string
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

# (group, plural) -> Kind, for objects and lists nobody created yet.
KINDS = {
    ("", "secrets"): "Secret", ("", "configmaps"): "ConfigMap",
    ("", "namespaces"): "Namespace", ("", "pods"): "Pod",
    ("", "services"): "Service", ("", "events"): "Event",
    ("events.k8s.io", "events"): "Event",
    ("coordination.k8s.io", "leases"): "Lease",
    ("networking.k8s.io", "ingresses"): "Ingress",
    ("admissionregistration.k8s.io", "mutatingwebhookconfigurations"):
        "MutatingWebhookConfiguration",
    ("cert-manager.io", "certificates"): "Certificate",
    ("cert-manager.io", "issuers"): "Issuer",
    ("cert-manager.io", "clusterissuers"): "ClusterIssuer",
    ("cert-manager.io", "certificaterequests"): "CertificateRequest",
}
PLURALS = {(g, k): r for (g, r), k in KINDS.items()}
HISTORY = 100_000  # watch events kept for resuming; older resumes get 410 Gone


def plural_of(group, kind):
    return PLURALS.get((group, kind)) or kind.lower() + ("es" if kind.endswith("s") else "s")


def now():
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


class ApiError(Exception):
    def __init__(self, code, reason, message):
        super().__init__(message)
        self.code, self.reason, self.message = code, reason, message

    def status(self):
        return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "code": self.code, "reason": self.reason, "message": self.message}


# --- patches ---------------------------------------------------------------

def merge_patch(target, patch, keyed_lists=False):
    """RFC 7386; with keyed_lists, lists of objects with `name` merge by name
    (the strategic-merge-patch behaviour certweave relies on)."""
    if not isinstance(patch, dict):
        if keyed_lists and isinstance(patch, list) and isinstance(target, list) and _named(patch) and _named(target):
            out = [copy.deepcopy(t) for t in target]
            index = {t["name"]: i for i, t in enumerate(out)}
            for item in patch:
                if item["name"] in index:
                    out[index[item["name"]]] = merge_patch(out[index[item["name"]]], item, True)
                else:
                    out.append(copy.deepcopy(item))
            return out
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value, keyed_lists)
    return result


def _named(items):
    return all(isinstance(i, dict) and "name" in i for i in items)


def json_patch(doc, ops):
    """RFC 6902: add, remove, replace, test."""
    doc = copy.deepcopy(doc)
    for op in ops:
        *parents, last = [p.replace("~1", "/").replace("~0", "~") for p in op["path"].split("/")[1:]]
        node = doc
        for p in parents:
            node = node[int(p)] if isinstance(node, list) else node[p]
        if isinstance(node, list):
            last = len(node) if last == "-" else int(last)
        kind = op["op"]
        if kind == "test":
            if node[last] != op["value"]:
                raise ApiError(422, "Invalid", f"test failed at {op['path']}")
        elif kind == "remove":
            del node[last]
        elif kind == "add" and isinstance(node, list):
            node.insert(last, op["value"])
        elif kind in ("add", "replace"):
            node[last] = op["value"]
        else:
            raise ApiError(422, "Invalid", f"unsupported JSON patch op {kind}")
    return doc


# --- selectors ---------------------------------------------------------------

SELECTOR_TERM = re.compile(r"\s*([^,()]+?)\s+(in|notin)\s+\(([^)]*)\)\s*|([^,]+)")


def label_matcher(selector):
    tests = []
    for m in SELECTOR_TERM.finditer(selector or ""):
        if m.group(1):
            key, op, values = m.group(1).strip(), m.group(2), {v.strip() for v in m.group(3).split(",")}
            tests.append(lambda l, k=key, o=op, v=values: (l.get(k) in v) == (o == "in"))
            continue
        term = m.group(4).strip()
        if not term:
            continue
        if "!=" in term:
            key, value = (s.strip() for s in term.split("!=", 1))
            tests.append(lambda l, k=key, v=value: l.get(k) != v)
        elif "=" in term:
            key, value = (s.strip() for s in term.replace("==", "=").split("=", 1))
            tests.append(lambda l, k=key, v=value: l.get(k) == v)
        elif term.startswith("!"):
            tests.append(lambda l, k=term[1:].strip(): k not in l)
        else:
            tests.append(lambda l, k=term: k in l)
    return lambda obj: all(t(obj["metadata"].get("labels") or {}) for t in tests)


def field_matcher(selector):
    tests = []
    for term in filter(None, (selector or "").split(",")):
        negate = "!=" in term
        key, value = term.replace("!=", "=").replace("==", "=").split("=", 1)
        path = key.strip().split(".")
        tests.append((path, value.strip(), negate))

    def get(obj, path):
        for p in path:
            obj = obj.get(p) if isinstance(obj, dict) else None
        return "" if obj is None else str(obj)
    return lambda obj: all((get(obj, p) == v) != n for p, v, n in tests)


# --- the store -----------------------------------------------------------------

class Store:
    def __init__(self):
        self.lock = threading.Lock()
        self.rv = 0
        self.objects = collections.defaultdict(dict)  # (group, resource) -> {(ns, name): obj}
        self.history = collections.deque(maxlen=HISTORY)  # (rv, gr, type, obj)
        self.watchers = set()
        self.requests = 0

    def _emit(self, gr, kind, obj):
        event = (self.rv, gr, kind, obj)
        self.history.append(event)
        for w in list(self.watchers):
            w.offer(event)

    def _bump(self, obj, gr, kind):
        self.rv += 1
        obj["metadata"]["resourceVersion"] = str(self.rv)
        self._emit(gr, kind, obj)
        return obj

    def create(self, gr, ns, obj, api_version=None):
        with self.lock:
            return self._insert(gr, ns, obj, api_version)

    def _insert(self, gr, ns, obj, api_version):
        meta = obj.setdefault("metadata", {})
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = meta["generateName"] + "".join(random.choices(string.ascii_lowercase + string.digits, k=5))
        name = meta.get("name")
        if not name:
            raise ApiError(422, "Invalid", "metadata.name: Required value")
        if ns:
            meta["namespace"] = ns
        if (ns or "", name) in self.objects[gr]:
            raise ApiError(409, "AlreadyExists", f'{gr[1]} "{name}" already exists')
        if api_version:
            obj["apiVersion"] = api_version
        obj.setdefault("kind", KINDS.get(gr, ""))
        meta.update(uid=str(uuid.uuid4()), creationTimestamp=now(), generation=1)
        meta.pop("resourceVersion", None)
        self.objects[gr][(ns or "", name)] = obj
        return self._bump(obj, gr, "ADDED")

    def get(self, gr, ns, name):
        obj = self.objects[gr].get((ns or "", name))
        if obj is None:
            raise ApiError(404, "NotFound", f'{gr[1]} "{name}" not found')
        return obj

    def update(self, gr, ns, name, change, status_only, create_missing=False, api_version=None):
        """Applies `change(old) -> new` under the lock, keeping what a write
        to that (sub)resource may not touch."""
        with self.lock:
            old = self.objects[gr].get((ns or "", name))
            if old is None:
                if not create_missing:
                    raise ApiError(404, "NotFound", f'{gr[1]} "{name}" not found')
                new = change({"metadata": {"name": name}})
                new.setdefault("metadata", {})["name"] = name
                return self._insert(gr, ns, new, api_version), True
            new = change(copy.deepcopy(old))
            wanted_rv = (new.get("metadata") or {}).get("resourceVersion")
            if wanted_rv and wanted_rv != old["metadata"]["resourceVersion"]:
                raise ApiError(409, "Conflict", f'Operation cannot be fulfilled on {gr[1]} "{name}": '
                               "the object has been modified; please apply your changes to the latest version and try again")
            if status_only:
                result = copy.deepcopy(old)
                result["status"] = new.get("status")
                if result["status"] is None:
                    del result["status"]
            else:
                result = new
                result.setdefault("metadata", {})
                if "status" in old:
                    result["status"] = old["status"]
                else:
                    result.pop("status", None)
                for key in ("uid", "creationTimestamp", "name", "namespace", "generation"):
                    if key in old["metadata"]:
                        result["metadata"][key] = old["metadata"][key]
                if result.get("spec") != old.get("spec"):
                    result["metadata"]["generation"] = old["metadata"].get("generation", 1) + 1
                result.setdefault("apiVersion", old.get("apiVersion"))
                result.setdefault("kind", old.get("kind"))
            self.objects[gr][(ns or "", name)] = result
            return self._bump(result, gr, "MODIFIED"), False

    def delete(self, gr, ns, name):
        with self.lock:
            obj = self.objects[gr].pop((ns or "", name), None)
            if obj is None:
                raise ApiError(404, "NotFound", f'{gr[1]} "{name}" not found')
            obj = copy.deepcopy(obj)
            self._bump(obj, gr, "DELETED")
            # Garbage collection: dependents go with their owner.
            uid = obj["metadata"].get("uid")
            dependents = [(g, k) for g, objs in self.objects.items() for k, o in objs.items()
                          if any(r.get("uid") == uid for r in o["metadata"].get("ownerReferences") or [])]
        for g, (dns, dname) in dependents:
            try:
                self.delete(g, dns, dname)
            except ApiError:
                pass
        return obj

    def list(self, gr, ns, match):
        with self.lock:
            items = [o for (ons, _), o in self.objects[gr].items() if (ns is None or ons == ns) and match(o)]
            return items, str(self.rv)


class Watcher:
    def __init__(self, gr, ns, match):
        self.gr, self.ns, self.match = gr, ns, match
        self.events = collections.deque()
        self.ready = threading.Event()

    def offer(self, event):
        _, gr, _, obj = event
        if gr == self.gr and (self.ns is None or obj["metadata"].get("namespace", "") == self.ns) and self.match(obj):
            self.events.append(event)
            self.ready.set()


# --- HTTP --------------------------------------------------------------------

def metadata_only(obj):
    return {"apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadata", "metadata": obj["metadata"]}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes: without TCP_NODELAY every
    # response waits ~40 ms for the client's delayed ACK.
    disable_nagle_algorithm = True
    store: Store = None
    verbose = False
    list_delay = 0.0

    def log_message(self, fmt, *args):
        if self.verbose:
            sys.stderr.write("fake-apiserver: " + fmt % args + "\n")

    # Routing ------------------------------------------------------------------
    def do_GET(self): self.serve("GET")
    def do_POST(self): self.serve("POST")
    def do_PUT(self): self.serve("PUT")
    def do_PATCH(self): self.serve("PATCH")
    def do_DELETE(self): self.serve("DELETE")

    def serve(self, method):
        self.store.requests += 1
        url = urlsplit(self.path)
        self.query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        length = int(self.headers.get("Content-Length") or 0)
        self.body = self.rfile.read(length) if length else b""
        try:
            if url.path == "/_fake/stats":
                return self.send_json(200, self.stats())
            if url.path == "/version":
                return self.send_json(200, {"major": "1", "minor": "34", "gitVersion": "v1.34.0-fake", "platform": "linux/amd64"})
            if url.path in ("/api", "/apis", "/healthz", "/readyz", "/livez"):
                return self.send_json(200, {"kind": "APIVersions", "versions": ["v1"]} if url.path == "/api"
                                      else {"kind": "APIGroupList", "apiVersion": "v1", "groups": []})
            self.route(method, url.path)
        except ApiError as e:
            self.send_json(e.code, e.status())
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except Exception as e:  # a bug in the fake: say so loudly
            import traceback
            traceback.print_exc()
            self.send_json(500, ApiError(500, "InternalError", f"fake apiserver: {e!r}").status())

    def route(self, method, path):
        parts = [p for p in path.split("/") if p]
        if len(parts) >= 2 and parts[0] == "api":
            group, version, rest = "", parts[1], parts[2:]
        elif len(parts) >= 3 and parts[0] == "apis":
            group, version, rest = parts[1], parts[2], parts[3:]
        else:
            raise ApiError(404, "NotFound", f"the server could not find the requested resource ({path})")
        watch = self.query.get("watch") in ("true", "1")
        if rest and rest[0] == "watch":
            watch, rest = True, rest[1:]
        ns = None
        if len(rest) >= 3 and rest[0] == "namespaces" and rest[2] not in ("status", "finalize"):
            ns, rest = rest[1], rest[2:]
        if not rest or len(rest) > 3:
            raise ApiError(404, "NotFound", f"the server could not find the requested resource ({path})")
        resource, name, sub = rest[0], (rest[1] if len(rest) > 1 else None), (rest[2] if len(rest) > 2 else None)
        if sub not in (None, "status"):
            raise ApiError(404, "NotFound", f"subresource {sub} is not served")
        self.gr = (group, resource)
        self.api_version = f"{group}/{version}" if group else version
        accept = self.headers.get("Accept") or ""
        self.meta_only = "as=PartialObjectMetadata" in accept
        store = self.store

        if method == "GET" and name is None:
            match = self.matcher()
            if watch:
                return self.watch(ns, match)
            items, rv = store.list(self.gr, ns, match)
            time.sleep(self.list_delay)  # a slow transfer of a consistent snapshot
            kind = (items[0].get("kind") if items else None) or KINDS.get(self.gr, "")
            if self.meta_only:
                return self.send_json(200, {"apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadataList",
                                            "metadata": {"resourceVersion": rv},
                                            "items": [metadata_only(o) for o in items]})
            return self.send_json(200, {"apiVersion": self.api_version, "kind": kind + "List",
                                        "metadata": {"resourceVersion": rv}, "items": items})
        if method == "GET":
            return self.send_object(200, store.get(self.gr, ns, name))
        if method == "POST" and name is None:
            return self.send_object(201, store.create(self.gr, ns, self.json_body(), self.api_version))
        if method == "DELETE" and name is not None:
            return self.send_object(200, store.delete(self.gr, ns, name))
        if method == "PUT" and name is not None:
            body = self.json_body()
            if (body.get("metadata") or {}).get("name") not in (None, name):
                raise ApiError(400, "BadRequest", "the name of the object does not match the name on the URL")
            obj, _ = store.update(self.gr, ns, name, lambda old: body, sub == "status")
            return self.send_object(200, obj)
        if method == "PATCH" and name is not None:
            ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip()
            body = self.json_body()
            if ctype == "application/merge-patch+json":
                change = lambda old: merge_patch(old, body)
            elif ctype == "application/strategic-merge-patch+json":
                change = lambda old: merge_patch(old, body, keyed_lists=True)
            elif ctype == "application/apply-patch+yaml":
                change = lambda old: merge_patch(old, body, keyed_lists=True)
            elif ctype == "application/json-patch+json":
                change = lambda old: json_patch(old, body)
            else:
                raise ApiError(415, "UnsupportedMediaType", f"the body of the request was in an unknown format: {ctype}")
            obj, created = store.update(self.gr, ns, name, change, sub == "status",
                                        create_missing=ctype == "application/apply-patch+yaml" and sub is None,
                                        api_version=self.api_version)
            return self.send_object(201 if created else 200, obj)
        raise ApiError(405, "MethodNotAllowed", f"{method} is not supported on {path}")

    def matcher(self):
        labels = label_matcher(self.query.get("labelSelector"))
        fields = field_matcher(self.query.get("fieldSelector"))
        return lambda o: labels(o) and fields(o)

    def json_body(self):
        try:
            value = json.loads(self.body or b"null")
        except ValueError as e:
            raise ApiError(400, "BadRequest", f"invalid JSON body: {e}")
        if not isinstance(value, (dict, list)):
            raise ApiError(400, "BadRequest", "the request body must be a JSON object")
        return value

    # Responses -----------------------------------------------------------------
    def render(self, obj):
        if self.meta_only:
            return metadata_only(obj)
        return obj

    def send_object(self, code, obj):
        self.send_json(code, self.render(obj))

    def send_json(self, code, value):
        data = json.dumps(value, separators=(",", ":")).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def chunk(self, value):
        data = json.dumps(value, separators=(",", ":")).encode() + b"\n"
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def watch(self, ns, match):
        store, q = self.store, self.query
        rv = q.get("resourceVersion") or ""
        initial = q.get("sendInitialEvents") == "true"
        bookmarks = q.get("allowWatchBookmarks") == "true"
        deadline = time.monotonic() + float(q.get("timeoutSeconds") or 1800)
        watcher = Watcher(self.gr, ns, match)
        backlog, gone = [], False
        with store.lock:
            if initial or rv in ("", "0"):
                backlog = [(0, self.gr, "ADDED", o) for (ons, _), o in store.objects[self.gr].items()
                           if (ns is None or ons == ns) and match(o)]
            else:
                oldest = store.history[0][0] if store.history else store.rv + 1
                if int(rv) < oldest - 1 and int(rv) < store.rv:
                    gone = True
                else:
                    for event in store.history:
                        if event[0] > int(rv):
                            watcher.offer(event)
            last_rv = str(store.rv)
            store.watchers.add(watcher)
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        try:
            if gone:
                self.chunk({"type": "ERROR", "object": ApiError(410, "Expired", f"too old resource version: {rv}").status()})
                return
            for _, _, kind, obj in backlog:
                self.chunk({"type": kind, "object": self.render(obj)})
            if initial:
                self.chunk({"type": "BOOKMARK", "object": self.bookmark(last_rv, initial_end=True)})
            idle_since = time.monotonic()
            while time.monotonic() < deadline:
                watcher.ready.wait(min(1.0, max(0.0, deadline - time.monotonic())))
                watcher.ready.clear()
                while watcher.events:
                    event_rv, _, kind, obj = watcher.events.popleft()
                    self.chunk({"type": kind, "object": self.render(obj)})
                    last_rv, idle_since = str(event_rv), time.monotonic()
                if bookmarks and time.monotonic() - idle_since > 10:
                    with store.lock:
                        if not watcher.events:
                            last_rv = str(store.rv)
                    self.chunk({"type": "BOOKMARK", "object": self.bookmark(last_rv)})
                    idle_since = time.monotonic()
        except (BrokenPipeError, ConnectionResetError):
            pass
        finally:
            with store.lock:
                store.watchers.discard(watcher)
            try:
                self.wfile.write(b"0\r\n\r\n")
                self.wfile.flush()
            except OSError:
                self.close_connection = True

    def bookmark(self, rv, initial_end=False):
        meta = {"resourceVersion": rv}
        if initial_end:
            meta["annotations"] = {"k8s.io/initial-events-end": "true"}
        if self.meta_only:
            return {"apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadata", "metadata": meta}
        return {"apiVersion": self.api_version, "kind": KINDS.get(self.gr, ""), "metadata": meta}

    def stats(self):
        store = self.store
        with store.lock:
            counts = {f"{g}/{r}" if g else r: len(objs) for (g, r), objs in store.objects.items() if objs}
            certificates = list(store.objects[("cert-manager.io", "certificates")].values())
            ready = sum(1 for c in certificates if any(
                cond.get("type") == "Ready" and cond.get("status") == "True"
                for cond in (c.get("status") or {}).get("conditions") or []))
            return {"resourceVersion": store.rv, "objects": counts, "readyCertificates": ready,
                    "requests": store.requests, "watches": len(store.watchers)}


def preload(store, path):
    loaded = 0
    with open(path) as f:
        for line in f:
            if not line.strip():
                continue
            obj = json.loads(line)
            api_version = obj["apiVersion"]
            group = api_version.rsplit("/", 1)[0] if "/" in api_version else ""
            gr = (group, plural_of(group, obj["kind"]))
            store.create(gr, obj["metadata"].get("namespace"), obj, api_version)
            loaded += 1
    store.history.clear()
    return loaded


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--preload", metavar="FILE")
    parser.add_argument("--list-delay", type=float, default=0.0, metavar="SECONDS",
                        help="answer every LIST this much later, as a large cluster would")
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args()
    store = Store()
    if args.preload:
        n = preload(store, args.preload)
        sys.stderr.write(f"fake-apiserver: preloaded {n} objects\n")
    Handler.store, Handler.verbose, Handler.list_delay = store, args.verbose, args.list_delay
    ThreadingHTTPServer.request_queue_size = 256
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    server.daemon_threads = True
    print(server.server_address[1], flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
