#!/usr/bin/python3
"""Replay Elasticsearch, OpenSearch and Solr replies, and bad servers.

Neither Elasticsearch/OpenSearch nor Solr is packaged for Debian, so the
search plugins are tested against this server. It answers in the exact
format those servers use (Elasticsearch 8.11 and OpenSearch 2.11 for
`GET /` and `GET /_cluster/health`, Solr 9 for the core admin STATUS and
the ping handler), and it can misbehave the ways a broken server does.

The first path segment names the scenario; the rest is the real API path:

    GET /es-green/_cluster/health     -> a green three-node cluster
    GET /solr-ok/solr/products/admin/ping?wt=json

Scenarios for any path: `garbage` (binary junk), `close` (headers and half
the body, then the connection closes), `huge` (an endless-looking 64 MiB
body), `silent` (accepts, reads, never answers), `slow` (answers after
3 s), `reset` (closes with an RST). `/live/...` replays whatever scenario
`/_replay/live?to=<scenario>` chose last (es-green at start), so a test
can walk one check through green, yellow and red. `/_replay/stats` returns
{"requests": {path: count}, "auth": last Authorization header}.

Usage: replay_server.py HOST PORT   (prints "ready" once listening)
"""
import base64
import json
import socket
import struct
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

# ---- Elasticsearch / OpenSearch ----

ES_BANNER = {
    "name": "node-1",
    "cluster_name": "shop",
    "cluster_uuid": "Qx3hYyJrQ8G2m6cDqRk2dA",
    "version": {
        "number": "8.11.3",
        "build_flavor": "default",
        "build_type": "deb",
        "build_hash": "64cf052f3b56b1fd4449f5454cb88aca7e739d9a",
        "build_date": "2023-12-08T11:33:53.634979452Z",
        "build_snapshot": False,
        "lucene_version": "9.8.0",
        "minimum_wire_compatibility_version": "7.17.0",
        "minimum_index_compatibility_version": "7.0.0",
    },
    "tagline": "You Know, for Search",
}

OS_BANNER = {
    "name": "os-node-2",
    "cluster_name": "search",
    "cluster_uuid": "fR1mWQ7NQxS2VbqG3pLw6A",
    "version": {
        "distribution": "opensearch",
        "number": "2.11.1",
        "build_type": "deb",
        "build_hash": "6b1986e964d440be9137eba1413015c31c5a7752",
        "build_date": "2023-11-29T21:43:10.135035992Z",
        "build_snapshot": False,
        "lucene_version": "9.7.0",
        "minimum_wire_compatibility_version": "7.10.0",
        "minimum_index_compatibility_version": "7.0.0",
    },
    "tagline": "The OpenSearch Project: https://opensearch.org/",
}


def es_health(cluster, status, nodes, active_primary, active, relocating=0,
              initializing=0, unassigned=0, delayed=0, pending=0,
              max_wait=0, opensearch=False):
    """A /_cluster/health reply, keys in the order the servers write them."""
    total = active + initializing + unassigned
    h = {"cluster_name": cluster, "status": status, "timed_out": False,
         "number_of_nodes": nodes, "number_of_data_nodes": nodes}
    if opensearch:
        h["discovered_master"] = True
        h["discovered_cluster_manager"] = True
    h.update({"active_primary_shards": active_primary, "active_shards": active,
              "relocating_shards": relocating,
              "initializing_shards": initializing,
              "unassigned_shards": unassigned})
    if not opensearch:
        h["unassigned_primary_shards"] = 0
    h.update({"delayed_unassigned_shards": delayed,
              "number_of_pending_tasks": pending,
              "number_of_in_flight_fetch": 0,
              "task_max_waiting_in_queue_millis": max_wait,
              "active_shards_percent_as_number":
                  100.0 * active / total if total else 100.0})
    return h


def es_error(status, etype, reason):
    cause = {"type": etype, "reason": reason}
    return {"error": {"root_cause": [cause], **cause}, "status": status}


NO_MASTER = {
    "error": {"root_cause": [{"type": "master_not_discovered_exception",
                              "reason": None}],
              "type": "master_not_discovered_exception", "reason": None},
    "status": 503,
}

AUTH_FAILED = {
    "error": {"root_cause": [{
        "type": "security_exception",
        "reason": "unable to authenticate user [monitor] for REST request "
                  "[/_cluster/health]",
        "header": {"WWW-Authenticate": [
            'Basic realm="security" charset="UTF-8"', "ApiKey"]}}],
        "type": "security_exception",
        "reason": "unable to authenticate user [monitor] for REST request "
                  "[/_cluster/health]",
        "header": {"WWW-Authenticate": [
            'Basic realm="security" charset="UTF-8"', "ApiKey"]}},
    "status": 401,
}

# Basic credentials the es-auth scenario accepts: monitor / s3cret.
ES_AUTH = "Basic " + base64.b64encode(b"monitor:s3cret").decode()

ES_SCENARIOS = {
    "es-green": (ES_BANNER, es_health("shop", "green", 3, 5, 10)),
    "es-yellow": (OS_BANNER, es_health("search", "yellow", 2, 5, 8,
                                       relocating=1, unassigned=2, delayed=2,
                                       opensearch=True)),
    "es-red": (ES_BANNER, es_health("shop", "red", 2, 4, 7, initializing=1,
                                    unassigned=2, pending=3, max_wait=1250)),
    "es-two-nodes": (ES_BANNER, es_health("shop", "green", 2, 5, 10)),
}

# ---- Solr ----

def solr_core(name, docs, max_doc, size, segments, uptime_ms):
    return {
        "name": name,
        "instanceDir": f"/var/solr/data/{name}",
        "dataDir": f"/var/solr/data/{name}/data/",
        "config": "solrconfig.xml",
        "schema": "managed-schema.xml",
        "startTime": "2024-03-04T09:12:44.118Z",
        "uptime": uptime_ms,
        "index": {
            "numDocs": docs,
            "maxDoc": max_doc,
            "deletedDocs": max_doc - docs,
            "version": 2417,
            "segmentCount": segments,
            "current": True,
            "hasDeletions": max_doc > docs,
            "directory": "org.apache.lucene.store.NRTCachingDirectory:"
                         f"NRTCachingDirectory(MMapDirectory@/var/solr/data/{name}"
                         "/data/index lockFactory=org.apache.lucene.store."
                         "NativeFSLockFactory@1b2c3d4e; maxCacheMB=48.0 "
                         "maxMergeSizeMB=4.0)",
            "segmentsFile": "segments_1r",
            "segmentsFileSizeInBytes": 412,
            "userData": {"commitCommandVer": "1792611123456458752",
                         "commitTimeMSec": "1709545100012"},
            "lastModified": "2024-03-04T09:38:20.012Z",
            "sizeInBytes": size,
            "size": f"{size / 1048576:.2f} MB",
        },
    }


PRODUCTS = solr_core("products", 12000, 12000, 73400320, 9, 7532016)
ORDERS = solr_core("orders", 512, 530, 1843201, 4, 7532000)
INIT_FAILURE = ("org.apache.solr.common.SolrException:org.apache.solr.common."
                "SolrException: Could not load conf for core products: Error "
                "loading solr config from /var/solr/data/products/conf/"
                "solrconfig.xml")


def solr_status(cores, failures=None):
    return {"responseHeader": {"status": 0, "QTime": 3},
            "initFailures": failures or {},
            "status": {c["name"]: c for c in cores}}


def solr_ping_ok():
    return {"responseHeader": {"zkConnected": None, "status": 0, "QTime": 1,
                               "params": {"q": "{!lucene}*:*", "distrib": "false",
                                          "df": "_text_", "rows": "10",
                                          "echoParams": "all", "rid": "-1",
                                          "wt": "json"}},
            "status": "OK"}


def solr_error(code, msg):
    return {"responseHeader": {"status": code, "QTime": 0},
            "error": {"metadata": ["error-class",
                                   "org.apache.solr.common.SolrException",
                                   "root-error-class",
                                   "org.apache.solr.common.SolrException"],
                      "msg": msg, "code": code}}


JETTY_404 = """<html>
<head>
<meta http-equiv="Content-Type" content="text/html;charset=utf-8"/>
<title>Error 404 Not Found</title>
</head>
<body><h2>HTTP ERROR 404 Not Found</h2>
<table>
<tr><th>URI:</th><td>{uri}</td></tr>
<tr><th>STATUS:</th><td>404</td></tr>
<tr><th>MESSAGE:</th><td>Not Found</td></tr>
<tr><th>SERVLET:</th><td>default</td></tr>
</table>

</body>
</html>
"""

# scenario -> (STATUS reply, {core: (ping code, ping reply)}); a core
# missing from the ping map answers Jetty's 404.
SOLR_SCENARIOS = {
    "solr-ok": (solr_status([ORDERS, PRODUCTS]),
                {"products": (200, solr_ping_ok()), "orders": (200, solr_ping_ok())}),
    "solr-initfail": (solr_status([ORDERS], {"products": INIT_FAILURE}),
                      {"products": (500, solr_error(
                          500, "SolrCore 'products' is not available due to "
                               "init failure: Could not load conf for core "
                               "products")),
                       "orders": (200, solr_ping_ok())}),
    "solr-missing": (solr_status([ORDERS]), {"orders": (200, solr_ping_ok())}),
    "solr-disabled": (solr_status([ORDERS, PRODUCTS]),
                      {"products": (503, solr_error(503, "Service disabled")),
                       "orders": (200, solr_ping_ok())}),
}


class Replay(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "replay"
    sys_version = ""

    def log_message(self, fmt, *args):
        pass

    # ---- replies ----

    def send(self, code, body, ctype="application/json; charset=UTF-8"):
        data = body if isinstance(body, bytes) else (
            json.dumps(body, separators=(",", ":")) if not isinstance(body, str)
            else body).encode()
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(data)
        self.close_connection = True

    def misbehave(self, scenario):
        """The scenarios that break HTTP; True when one applied."""
        if scenario == "garbage":
            self.wfile.write(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"
                             b"garbage\x00\xff\xfe not HTTP at all\r\n\r\n")
            self.close_connection = True
        elif scenario == "close":
            body = json.dumps(ES_SCENARIOS["es-green"][1]).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body[:len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
        elif scenario == "huge":
            total = 64 * 1024 * 1024
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(total))
            self.end_headers()
            chunk = b'{"padding":"' + b"x" * 65000 + b'",'
            sent = 0
            try:
                while sent < total:
                    self.wfile.write(chunk)
                    sent += len(chunk)
            except OSError:
                pass  # the client gave up, as it should
            self.close_connection = True
        elif scenario == "silent":
            # Hold the connection open until the client leaves.
            self.connection.settimeout(30)
            try:
                while self.connection.recv(4096):
                    pass
            except OSError:
                pass
            self.close_connection = True
        elif scenario == "reset":
            # Close at once with linger 0: an RST, not the FIN that the
            # server's own shutdown(SHUT_WR) would send first.
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                       struct.pack("ii", 1, 0))
            self.connection.close()
            self.close_connection = True
        else:
            return False
        return True

    def do_GET(self):
        srv = self.server
        with srv.lock:
            srv.requests[self.path] = srv.requests.get(self.path, 0) + 1
            if self.headers.get("Authorization"):
                srv.auth = self.headers.get("Authorization")
        parts = self.path.split("/", 2)
        scenario = parts[1] if len(parts) > 1 else ""
        rest = "/" + (parts[2] if len(parts) > 2 else "")
        if scenario == "_replay":
            return self.control(rest)
        if scenario == "live":
            scenario = srv.live
        if scenario == "slow":
            time.sleep(3)
            scenario = "es-green"
        if self.misbehave(scenario):
            return
        if scenario in ES_SCENARIOS or scenario in ("es-nomaster", "es-auth"):
            return self.elasticsearch(scenario, rest)
        if scenario in SOLR_SCENARIOS:
            return self.solr(scenario, rest)
        self.send(404, {"error": f"no scenario {scenario!r}"})

    def control(self, rest):
        srv = self.server
        if rest.startswith("/live?to="):
            srv.live = rest.split("=", 1)[1]
            return self.send(200, {"live": srv.live})
        if rest == "/stats":
            with srv.lock:
                return self.send(200, {"requests": srv.requests, "auth": srv.auth})
        self.send(404, {"error": "unknown control"})

    def elasticsearch(self, scenario, rest):
        path = rest.split("?", 1)[0]
        if scenario == "es-auth":
            if self.headers.get("Authorization") != ES_AUTH:
                return self.send(401, AUTH_FAILED)
            scenario = "es-green"
        if scenario == "es-nomaster":
            if path == "/_cluster/health":
                return self.send(503, NO_MASTER)
            return self.send(200, ES_BANNER)
        banner, health = ES_SCENARIOS[scenario]
        if path == "/":
            return self.send(200, banner)
        if path == "/_cluster/health":
            return self.send(200, health)
        self.send(400, es_error(400, "illegal_argument_exception",
                                f"request [{path}] contains unrecognized parameter"))

    def solr(self, scenario, rest):
        status, pings = SOLR_SCENARIOS[scenario]
        path, _, query = rest.partition("?")
        if path == "/solr/admin/cores" and "action=STATUS" in query:
            return self.send(200, status)
        if path.startswith("/solr/") and path.endswith("/admin/ping"):
            core = path[len("/solr/"):-len("/admin/ping")]
            if core in pings:
                code, body = pings[core]
                return self.send(code, body)
        self.send(404, JETTY_404.format(uri=path), "text/html;charset=utf-8")


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, addr):
        super().__init__(addr, Replay)
        self.lock = threading.Lock()
        self.requests = {}
        self.auth = None
        self.live = "es-green"


def main():
    host, port = sys.argv[1], int(sys.argv[2])
    srv = Server((host, port))
    print("ready", flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    main()
