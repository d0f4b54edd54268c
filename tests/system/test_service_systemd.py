"""The systemd backend of the service manager, over a real D-Bus daemon
with a fake systemd Manager (tests/system/fake_systemd.py): this machine
runs without systemd, so the unit jobs are simulated. What is real: the
bus, the wire protocol, sd-bus in the agent and its event-loop driving."""
import os
import pathlib
import shutil

import pytest

from conftest import short_socket_dir, wait_for

BUS_CONF = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path={sock}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
    <allow user="*"/>
  </policy>
</busconfig>
"""


@pytest.fixture
def fake_systemd(procs, tmp_path):
    # dbus-daemon refuses a long socket path ("Socket name too long", seen
    # at 102 bytes below a deep checkout): the bus lives in a short one.
    sockdir = pathlib.Path(short_socket_dir("dbus"))
    try:
        yield from start_fake_systemd(procs, tmp_path, sockdir)
    finally:
        # The daemon itself is stopped with the test's other processes.
        shutil.rmtree(sockdir, ignore_errors=True)


def start_fake_systemd(procs, tmp_path, sockdir):
    sock = sockdir / "bus.sock"
    conf = tmp_path / "bus.conf"
    conf.write_text(BUS_CONF.format(sock=sock))
    procs.start([shutil.which("dbus-daemon") or "/usr/bin/dbus-daemon",
                 "--config-file", str(conf), "--nofork", "--nopidfile"],
                tmp_path / "dbus.log")
    wait_for(sock.exists, 10, what="the private bus")
    address = f"unix:path={sock}"
    calls = tmp_path / "calls.log"
    out = tmp_path / "fake.log"
    procs.start(["/usr/bin/python3", os.path.join(os.path.dirname(__file__), "fake_systemd.py"),
                 address, str(calls)], out)
    wait_for(lambda: "ready" in out.read_text() if out.exists() else False, 10,
             what="the fake systemd manager")
    yield address, calls


def test_systemd_backend_over_dbus(agent, fake_systemd):
    address, calls = fake_systemd
    checks = ""
    for name, unit in (("good", "web-ok.service"), ("bad", "web-fail.service"),
                       ("stuck", "web-hang.service"), ("ghost", "nothere.service")):
        checks += f"""
  - name: {name}
    plugin: flaky
    interval: 1s
    timeout: 800ms
    action_timeout: 1s
    service:
      manager: systemd
      unit: {unit}
"""
    agent.write(checks)
    agent.start(env={**os.environ, "DBUS_SYSTEM_BUS_ADDRESS": address})

    rc, reply = agent.action("good", "restart")
    assert (rc, reply["result"], reply["message"]) == (0, "ok", "restart web-ok.service: job done")
    rc, reply = agent.action("good", "stop")
    assert (rc, reply["message"]) == (0, "stop web-ok.service: job done")
    rc, reply = agent.action("bad", "start")
    assert (rc, reply["result"], reply["message"]) == (1, "failed", "start web-fail.service: job failed")
    rc, reply = agent.action("ghost", "start")
    assert (rc, reply["message"]) == (1, "start nothere.service: Unit nothere.service not found.")
    # A job that never ends: the action's deadline (the check's timeout).
    rc, reply = agent.action("stuck", "restart")
    assert rc in (1, 3), reply
    assert reply["message"] in ("timed out waiting for the job", "timed out after 1.000s"), reply

    log = calls.read_text().splitlines()
    assert "RestartUnit web-ok.service replace" in log
    assert "StopUnit web-ok.service replace" in log
    assert "StartUnit web-fail.service replace" in log
    assert log.count("Subscribe") == 5  # one per operation, before the job
    assert agent.healthy()
