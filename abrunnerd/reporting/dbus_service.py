"""The runner on D-Bus: ``org.acousticbrainz.Runner1`` at ``/org/acousticbrainz/Runner1``.

``GetStatus() -> a{sv}`` for anyone; ``Pause()``, ``Resume()``, ``Cancel()`` for root and
group ``abrunner`` (enforced by the bus policy ``etc/dbus-1/org.acousticbrainz.Runner1.conf``);
signal ``Progress(a{sv})`` on every status change. dbus-python dispatches on a GLib main
loop in a daemon thread; method handlers only read a snapshot or queue a request, so the
main loop stays the only actor.
"""
import logging
import os
import threading
from typing import Any, Dict, Optional

from abrunnerd.status import RunnerStatus

BUS_NAME = "org.acousticbrainz.Runner1"
OBJECT_PATH = "/org/acousticbrainz/Runner1"
INTERFACE = "org.acousticbrainz.Runner1"
ERROR_NO_JOB = INTERFACE + ".Error.NoJob"
log = logging.getLogger("abrunnerd")


def bus_spec(configured: str) -> str:
    """The bus to use: $ABRUNNERD_DBUS_ADDRESS wins over the config's ``dbus_bus``."""
    return os.environ.get("ABRUNNERD_DBUS_ADDRESS") or configured


def connect(spec: str) -> Any:
    import dbus

    if spec == "system":
        return dbus.SystemBus()
    if spec == "session":
        return dbus.SessionBus()
    return dbus.bus.BusConnection(spec)


def to_variant_dict(data: Dict[str, Any]) -> Any:
    import dbus

    from abrunnerd.sinks import dbus_string

    out = {}
    for key, value in data.items():
        if value is None:
            continue
        if isinstance(value, bool):
            out[key] = dbus.Boolean(value)
        elif isinstance(value, int):
            out[key] = dbus.Int64(value)
        elif isinstance(value, float):
            out[key] = dbus.Double(value)
        else:
            out[key] = dbus.String(dbus_string(value))  # server text: no NUL, valid UTF-8, bounded
    return dbus.Dictionary(out, signature="sv")


class DBusService:
    """Publishes a RunnerStatus; ``start`` returns False (and logs once) when no bus."""

    def __init__(self, status: RunnerStatus) -> None:
        self.status = status
        self._loop: Any = None
        self._thread: Optional[threading.Thread] = None
        self._obj: Any = None
        self._bus: Any = None

    def start(self, spec: str) -> bool:
        if spec == "none":
            return False
        try:
            import dbus
            import dbus.mainloop.glib
            import dbus.service
            from gi.repository import GLib
        except ImportError as exc:
            log.warning("D-Bus status disabled: %s (install python3-dbus and python3-gi)", exc)
            return False
        dbus.mainloop.glib.threads_init()
        dbus.mainloop.glib.DBusGMainLoop(set_as_default=True)
        try:
            self._bus = connect(spec)
            self._name = dbus.service.BusName(BUS_NAME, self._bus, do_not_queue=True)
        except dbus.exceptions.DBusException as exc:
            log.warning("D-Bus status disabled: cannot own %s on the %s bus (%s)", BUS_NAME,
                        spec if spec in ("system", "session") else "configured", exc.get_dbus_message())
            return False
        self._obj = _make_object(self._bus, self.status)
        self._loop = GLib.MainLoop()
        self._thread = threading.Thread(target=self._loop.run, name="dbus", daemon=True)
        self._thread.start()
        glib = GLib

        def emit(snap: Dict[str, Any]) -> None:
            glib.idle_add(self._emit, snap)

        self.status.listeners.append(emit)
        return True

    def _emit(self, snap: Dict[str, Any]) -> bool:
        try:
            self._obj.Progress(to_variant_dict(snap))
        except Exception:  # a signal nobody can receive is not worth a crash
            log.debug("could not emit Progress", exc_info=True)
        return False  # run once

    def stop(self) -> None:
        if self._loop is not None:
            self._loop.quit()
            if self._thread is not None:
                self._thread.join(timeout=5)
        if self._bus is not None:
            try:
                self._bus.close()
            except Exception:
                pass


def _make_object(bus: Any, status: RunnerStatus) -> Any:
    import dbus
    import dbus.service

    class NoJob(dbus.exceptions.DBusException):
        _dbus_error_name = ERROR_NO_JOB

    # No annotations on the exported methods: dbus-python 1.2.16 (Debian 11) inspects them
    # with inspect.getargspec, which refuses annotated functions (the daemon died at start).
    class RunnerObject(dbus.service.Object):
        @dbus.service.method(INTERFACE, in_signature="", out_signature="a{sv}")
        def GetStatus(self):  # type: ignore[no-untyped-def]
            return to_variant_dict(status.snapshot())

        def _control(self, what: str) -> None:
            if not status.snapshot().get("job_id"):
                raise NoJob("no job is running")
            status.request(what)

        @dbus.service.method(INTERFACE, in_signature="", out_signature="")
        def Pause(self):  # type: ignore[no-untyped-def]
            self._control("pause")

        @dbus.service.method(INTERFACE, in_signature="", out_signature="")
        def Resume(self):  # type: ignore[no-untyped-def]
            self._control("resume")

        @dbus.service.method(INTERFACE, in_signature="", out_signature="")
        def Cancel(self):  # type: ignore[no-untyped-def]
            self._control("cancel")

        @dbus.service.signal(INTERFACE, signature="a{sv}")
        def Progress(self, status_dict):  # type: ignore[no-untyped-def]
            pass

    return RunnerObject(bus, OBJECT_PATH)
