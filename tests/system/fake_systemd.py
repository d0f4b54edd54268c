#!/usr/bin/python3
"""A stand-in for systemd's Manager on a private D-Bus, for testing the
agent's systemd backend without systemd as PID 1 (this machine has none).

It is a fake, and the tests say so: it implements the part of the
org.freedesktop.systemd1.Manager interface the agent uses (Subscribe,
StartUnit, StopUnit, RestartUnit; the JobRemoved signal), with the
signatures systemd documents. Units decide the outcome by name:
  *-ok.service      job "done" after 50 ms
  *-fail.service    job "failed"
  *-hang.service    the job never ends
  anything else     D-Bus error org.freedesktop.systemd1.NoSuchUnit
Every call is appended to the file given as argv[2], one line each.

    fake_systemd.py BUS_ADDRESS CALL_LOG
"""
import sys

import dbus
import dbus.service
from dbus.mainloop.glib import DBusGMainLoop
from gi.repository import GLib

IFACE = "org.freedesktop.systemd1.Manager"


class NoSuchUnit(dbus.DBusException):
    _dbus_error_name = "org.freedesktop.systemd1.NoSuchUnit"


class Manager(dbus.service.Object):
    def __init__(self, bus, log):
        super().__init__(bus, "/org/freedesktop/systemd1")
        self.log = log
        self.next_id = 1

    def _record(self, line):
        with open(self.log, "a") as f:
            f.write(line + "\n")

    @dbus.service.method(IFACE, in_signature="", out_signature="")
    def Subscribe(self):
        self._record("Subscribe")

    def _job(self, method, unit, mode):
        self._record(f"{method} {unit} {mode}")
        if not unit.endswith(("-ok.service", "-fail.service", "-hang.service")):
            raise NoSuchUnit(f"Unit {unit} not found.")
        jid = self.next_id
        self.next_id += 1
        path = dbus.ObjectPath(f"/org/freedesktop/systemd1/job/{jid}")
        if not unit.endswith("-hang.service"):
            result = "done" if unit.endswith("-ok.service") else "failed"
            GLib.timeout_add(50, self._finish, jid, path, unit, result)
        return path

    def _finish(self, jid, path, unit, result):
        self.JobRemoved(dbus.UInt32(jid), path, unit, result)
        return False

    @dbus.service.method(IFACE, in_signature="ss", out_signature="o")
    def StartUnit(self, unit, mode):
        return self._job("StartUnit", unit, mode)

    @dbus.service.method(IFACE, in_signature="ss", out_signature="o")
    def StopUnit(self, unit, mode):
        return self._job("StopUnit", unit, mode)

    @dbus.service.method(IFACE, in_signature="ss", out_signature="o")
    def RestartUnit(self, unit, mode):
        return self._job("RestartUnit", unit, mode)

    @dbus.service.signal(IFACE, signature="uoss")
    def JobRemoved(self, jid, job, unit, result):
        pass


def main():
    DBusGMainLoop(set_as_default=True)
    bus = dbus.bus.BusConnection(sys.argv[1])
    name = dbus.service.BusName("org.freedesktop.systemd1", bus)
    Manager(bus, sys.argv[2])
    print("ready", flush=True)
    GLib.MainLoop().run()
    del name


if __name__ == "__main__":
    main()
