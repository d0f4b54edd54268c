"""The elasticsearch and solr plugins in the real agent, against
replay_server.py: Elasticsearch, OpenSearch and Solr are not packaged for
Debian, so the server replays their replies in the exact format (green,
yellow and red clusters, no master, refused credentials; loaded, failed,
missing and disabled Solr cores) and misbehaves like broken servers
(garbage, closing mid-reply, huge replies, silence, slowness, resets).
"""
import json
import os
import re
import subprocess
import time
import urllib.request

import pytest

from conftest import AGENT, NODE1, free_port, wait_for

REPLAY = os.path.join(os.path.dirname(__file__), "replay_server.py")


class Replay:
    def __init__(self, host, port):
        self.host, self.port = host, port

    def url(self, scenario):
        return f"http://{self.host}:{self.port}/{scenario}"

    def get(self, path):
        with urllib.request.urlopen(f"http://{self.host}:{self.port}{path}",
                                    timeout=5) as r:
            return json.loads(r.read())

    def live(self, scenario):
        self.get(f"/_replay/live?to={scenario}")

    def requests(self, path):
        return self.get("/_replay/stats")["requests"].get(path, 0)


@pytest.fixture(scope="module")
def replay(session_procs, tmp_path_factory):
    run = tmp_path_factory.mktemp("replay")
    port = free_port()
    session_procs.start(["/usr/bin/python3", REPLAY, NODE1, str(port)],
                        run / "replay.log")
    r = Replay(NODE1, port)

    def up():
        try:
            return r.get("/_replay/stats") is not None
        except OSError:
            return False
    wait_for(up, 10, what="the replay server")
    return r


def es_check(name, url, interval="300ms", timeout="250ms", **opts):
    text = (f"  - name: {name}\n    plugin: elasticsearch\n"
            f"    interval: {interval}\n    timeout: {timeout}\n    url: \"{url}\"\n")
    return text + "".join(f"    {k}: {v}\n" for k, v in opts.items())


def solr_check(name, base_url, interval="300ms", timeout="250ms",
               cores="[products, orders]"):
    return (f"  - name: {name}\n    plugin: solr\n    interval: {interval}\n"
            f"    timeout: {timeout}\n    base_url: \"{base_url}\"\n"
            f"    cores: {cores}\n")


def message(agent, check):
    """The check's last message, through `troika-agent status`."""
    r = subprocess.run([AGENT, "--admin-socket", agent.admin_socket, "status"],
                       capture_output=True, timeout=30)
    for line in r.stdout.decode().splitlines():
        if line.startswith(f"check.{check}: "):
            value = line.split(" ", 3)[3] if line.count(" ") >= 3 else ""
            return re.sub(r"\\(.)", lambda m: {"n": "\n", "r": "\r"}.get(
                m.group(1), m.group(1)), value)
    return None


def test_elasticsearch_green_yellow_red_no_master_and_credentials(agent, replay):
    agent.write(
        es_check("green", replay.url("es-green"), expected_nodes=3)
        + es_check("yellow", replay.url("es-yellow"))
        + es_check("red", replay.url("es-red"))
        + es_check("nomaster", replay.url("es-nomaster"))
        + es_check("two-nodes", replay.url("es-two-nodes"), expected_nodes=3)
        + es_check("auth-ok", replay.url("es-auth"), user="monitor", password="s3cret")
        + es_check("auth-bad", replay.url("es-auth"), user="monitor", password="wrong"))
    agent.start()
    want = {"green": 0, "yellow": 1, "red": 2, "nomaster": 2, "two-nodes": 1,
            "auth-ok": 0, "auth-bad": 3}
    wait_for(lambda: all(agent.status(c) == s for c, s in want.items()), 10,
             what="every check's status")
    # The banner (GET /) is optional per run: under load its 250 ms may
    # run out while the health reply came. Wait for a run with both.
    wait_for(lambda: agent.find("elasticsearch_clusterinfo_version_info", check="yellow")
             and agent.find("elasticsearch_clusterinfo_version_info", check="green"),
             10, what="a run with the banner")
    m = agent.metrics()

    def v(name, check, **labels):
        for (n, ls), value in m.items():
            d = dict(ls)
            if n == name and d.get("check") == check and \
                    all(d.get(k) == x for k, x in labels.items()):
                return value
        return None
    for check, color in (("green", "green"), ("yellow", "yellow"), ("red", "red")):
        for c in ("green", "yellow", "red"):
            assert v("elasticsearch_cluster_health_status", check, color=c) == \
                (1 if c == color else 0), (check, c)
    assert v("elasticsearch_cluster_health_up", "green", cluster="shop") == 1
    assert v("elasticsearch_cluster_health_number_of_nodes", "green", cluster="shop") == 3
    assert v("elasticsearch_cluster_health_active_shards", "green") == 10
    assert v("elasticsearch_cluster_health_active_shards_percent_as_number", "yellow",
             cluster="search") == 80
    assert v("elasticsearch_cluster_health_unassigned_shards", "yellow") == 2
    assert v("elasticsearch_cluster_health_relocating_shards", "yellow") == 1
    assert v("elasticsearch_cluster_health_unassigned_shards", "red") == 2
    assert v("elasticsearch_cluster_health_initializing_shards", "red") == 1
    assert v("elasticsearch_cluster_health_number_of_pending_tasks", "red") == 3
    assert v("elasticsearch_cluster_health_task_max_waiting_in_queue_millis", "red") == 1250
    assert v("elasticsearch_clusterinfo_version_info", "yellow",
             distribution="opensearch", version="2.11.1") == 1
    assert v("elasticsearch_clusterinfo_version_info", "green",
             distribution="elasticsearch", version="8.11.3") == 1
    assert v("elasticsearch_cluster_health_up", "nomaster") == 0
    assert v("elasticsearch_cluster_health_up", "auth-bad") == 0
    assert v("elasticsearch_cluster_health_number_of_nodes", "auth-ok") == 3
    assert message(agent, "green") == \
        "Elasticsearch 8.11.3 cluster shop is green: 3 nodes, 10 of 10 shards active"
    assert message(agent, "yellow") == \
        "OpenSearch 2.11.1 cluster search is yellow: 2 nodes, 8 of 10 shards active"
    assert message(agent, "red") == \
        "Elasticsearch 8.11.3 cluster shop is red: 2 nodes, 7 of 10 shards active"
    assert message(agent, "nomaster") == "HTTP 503: master_not_discovered_exception"
    assert message(agent, "two-nodes") == ("Elasticsearch 8.11.3 cluster shop is green: "
                                              "2 nodes, fewer than the 3 expected, 10 of 10 "
                                              "shards active")
    assert message(agent, "auth-bad") == ("HTTP 401: user and password were refused, or "
                                             "the user lacks the monitor privilege")


def test_elasticsearch_one_check_through_green_yellow_red_and_back(agent, replay):
    replay.live("es-green")
    agent.write(es_check("live", replay.url("live"), interval="200ms", timeout="150ms"))
    agent.start()
    steps = (
        ("es-green", 0, "Elasticsearch 8.11.3 cluster shop is green: 3 nodes, 10 of 10 "
                        "shards active"),
        ("es-yellow", 1, "OpenSearch 2.11.1 cluster search is yellow: 2 nodes, 8 of 10 "
                         "shards active"),
        ("es-red", 2, "Elasticsearch 8.11.3 cluster shop is red: 2 nodes, 7 of 10 "
                      "shards active"),
        ("es-nomaster", 2, "HTTP 503: master_not_discovered_exception"),
        ("close", 2, "transfer closed with 221 bytes remaining to read"),
        ("es-green", 0, "Elasticsearch 8.11.3 cluster shop is green: 3 nodes, 10 of 10 "
                        "shards active"),
    )
    for scenario, status, msg in steps:
        replay.live(scenario)
        wait_for(lambda: (agent.status("live"), message(agent, "live")) == (status, msg),
                 5, what=f"status {status} for {scenario}")
        assert agent.find("elasticsearch_cluster_health_up", check="live") == \
            (1 if status < 2 or scenario == "es-red" else 0)
    assert agent.find("elasticsearch_cluster_health_status", check="live", color="green") == 1
    assert agent.runs("live", "timeout") == 0


def test_solr_cores_loaded_failed_missing_and_disabled(agent, replay):
    agent.write(
        solr_check("ok", replay.url("solr-ok") + "/solr")
        + solr_check("initfail", replay.url("solr-initfail") + "/solr")
        + solr_check("missing", replay.url("solr-missing") + "/solr/")
        + solr_check("disabled", replay.url("solr-disabled") + "/solr")
        + solr_check("one-core", replay.url("solr-missing") + "/solr", cores="[orders]"))
    agent.start()
    want = {"ok": 0, "initfail": 2, "missing": 2, "disabled": 2, "one-core": 0}
    wait_for(lambda: all(agent.status(c) == s for c, s in want.items()), 10,
             what="every check's status")
    assert agent.find("solr_up", check="ok") == 1
    assert agent.find("solr_ping_status", check="ok", core="products") == 1
    assert agent.find("solr_core_num_docs", check="ok", core="products") == 12000
    assert agent.find("solr_core_num_docs", check="ok", core="orders") == 512
    assert agent.find("solr_core_deleted_docs", check="ok", core="orders") == 18
    assert agent.find("solr_core_index_size_bytes", check="ok", core="products") == 73400320
    assert agent.find("solr_core_segments", check="ok", core="orders") == 4
    assert agent.find("solr_core_uptime_seconds", check="ok", core="orders") == 7532
    assert agent.find("solr_ping_status", check="initfail", core="products") == 0
    assert agent.find("solr_ping_status", check="initfail", core="orders") == 1
    assert agent.find("solr_core_num_docs", check="initfail", core="products") is None
    assert agent.find("solr_ping_status", check="missing", core="products") == 0
    assert agent.find("solr_ping_status", check="disabled", core="products") == 0
    assert agent.find("solr_core_num_docs", check="disabled", core="products") == 12000
    assert message(agent, "ok") == "2 cores OK: products 12000 docs, orders 512 docs"
    assert message(agent, "one-core") == "1 core OK: orders 512 docs"
    assert message(agent, "missing") == "core products is not loaded"
    assert message(agent, "disabled") == \
        "ping of core products failed: HTTP 503: Service disabled"
    assert message(agent, "initfail").startswith(
        "core products failed to load: org.apache.solr.common.SolrException:")


def test_bad_servers_get_the_right_status_in_time_while_others_keep_schedule(agent, replay):
    refused = free_port()  # nothing listens there
    bad = {
        "garbage": es_check("garbage", replay.url("garbage"), "1s", "500ms"),
        "close": solr_check("close", replay.url("close") + "/solr", "1s", "500ms"),
        "huge": es_check("huge", replay.url("huge"), "1s", "500ms"),
        "silent": es_check("silent", replay.url("silent"), "1s", "500ms"),
        "slow": solr_check("slow", replay.url("slow") + "/solr", "1s", "500ms"),
        "reset": es_check("reset", replay.url("reset"), "1s", "500ms"),
        "refused": es_check("refused", f"http://{NODE1}:{refused}", "1s", "500ms"),
    }
    agent.write("".join(bad.values())
                + es_check("steady", replay.url("es-green"), "200ms", "150ms"))
    agent.start()
    wait_for(lambda: all(agent.runs(c, "critical") >= 2 for c in bad), 15,
             what="two CRITICAL runs of every bad check")
    start = agent.runs("steady", "ok")
    t0 = time.monotonic()
    wait_for(lambda: agent.runs("steady", "ok") >= start + 10, 5,
             what="the steady check to keep running")
    elapsed = time.monotonic() - t0
    # 10 runs at 200 ms take 2 s on schedule; allow noise, not stalls.
    assert elapsed < 3.5, elapsed
    assert agent.status("steady") == 0
    for c in bad:
        assert agent.status(c) == 2, c
        # The plugin's own deadline (timeout minus a margin) came first:
        # never a host timeout, never longer than the check's timeout.
        assert agent.runs(c, "timeout") == 0, c
        assert agent.runs(c, "unknown") == 0, c
        count = agent.find("troika_check_duration_seconds_count", check=c)
        total = agent.find("troika_check_duration_seconds_sum", check=c)
        assert total / count < 0.5, (c, total / count)
    assert message(agent, "garbage") == "Received HTTP/0.9 when not allowed"
    assert message(agent, "close") == "transfer closed with 221 bytes remaining to read"
    assert message(agent, "huge") == "reply larger than max_body (1048576 bytes)"
    for c in ("silent", "slow"):
        # The task's time left at the start, less the plugin's margin.
        assert re.match(r"timed out after 4[0-5]\d ms: ", message(agent, c)), message(agent, c)
    assert message(agent, "reset") == "connection reset: Recv failure: Connection reset by peer"
    assert message(agent, "refused").startswith("connection refused: ")
    assert agent.find("elasticsearch_cluster_health_up", check="huge") == 0
    assert agent.find("solr_up", check="slow") == 0


def test_search_metrics_pass_promtool(agent, replay, tmp_path):
    agent.write(es_check("es", replay.url("es-yellow"))
                + es_check("es-down", replay.url("garbage"))
                + solr_check("solr", replay.url("solr-initfail") + "/solr"))
    agent.start()
    wait_for(lambda: agent.status("es") == 1 and agent.status("solr") == 2
             and agent.status("es-down") == 2, 10, what="results")
    text = agent.scrape_text()
    (tmp_path / "metrics.prom").write_text(text)
    r = subprocess.run(["promtool", "check", "metrics"], input=text.encode(),
                       capture_output=True, timeout=30)
    assert r.returncode == 0, r.stdout.decode() + r.stderr.decode()
    for family in ("elasticsearch_cluster_health_status", "solr_core_num_docs",
                   "solr_ping_status", "elasticsearch_cluster_health_up"):
        assert f"# TYPE {family} gauge" in text, family
