"""The status model on a live daemon (real process, private dbus-daemon, sd_notify
socket): a reload refused for a 0644 token shows the refusal instead of the old "no
token" line, on STATUS= and D-Bus alike; the fix clears it; the last STATUS= before
exit says the daemon stopped. (Training-time figures: test_end_to_end.py and the
booted-Debian walk-through in tests/system.)"""
import os
import signal

from abrunnerd.sinks import notify_status
from runner.conftest import dbus_status, wait_for

TOKEN = "status-token-8e2f66bb01"


def test_refused_reload_replaces_the_no_token_line_and_the_fix_clears_it(daemon_factory, notify_socket,
                                                                         private_bus):
    d = daemon_factory({"server_url": "https://jobs.example.org", "poll_interval": 1, "dbus_bus": private_bus},
                       env={"NOTIFY_SOCKET": notify_socket.path})
    d.start()
    status = wait_for(lambda: (lambda s: s if s.get("state") == "no-token" else None)(dbus_status(private_bus)),
                      what="no-token on D-Bus (%s)" % d.current_output()[-1500:])
    assert "still the shipped example" in status["summary"], status["summary"]
    d.set_token(TOKEN)
    os.chmod(d.token_path, 0o644)
    d.signal(signal.SIGHUP)
    status = wait_for(lambda: (lambda s: s if s.get("config_error") else None)(dbus_status(private_bus)),
                      what="the refused reload on D-Bus")
    summary = status["summary"]
    assert summary.startswith("configuration refused on reload (still without a token): token problem:"), summary
    assert "chmod 0640" in summary
    wait_for(lambda: "STATUS=" + notify_status(summary) in notify_socket.lines(), what="the same line on STATUS=")
    os.chmod(d.token_path, 0o600)
    d.signal(signal.SIGHUP)
    status = wait_for(lambda: (lambda s: s if not s.get("config_error") and s.get("state") != "no-token"
                               else None)(dbus_status(private_bus)), what="the refusal cleared")
    assert not status["summary"].startswith("configuration refused")
    assert d.stop() == 0
    assert [l for l in notify_socket.lines() if l.startswith("STATUS=")][-1] == "STATUS=stopped (no job held)"
    d.assert_token_never_shown()
