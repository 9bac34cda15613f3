"""The daemon without a token: stays up idle, READY=1, says once which file to edit,
publishes its status on D-Bus, and picks a token up on SIGHUP."""
import signal

from runner.conftest import dbus_status, wait_for

TOKEN = "idle-token-7d1e55aa90"


def test_no_token_idles_ready_and_names_the_file(daemon_factory, notify_socket, private_bus):
    d = daemon_factory({"server_url": "http://127.0.0.1:9", "poll_interval": 1, "dbus_bus": private_bus},
                       env={"NOTIFY_SOCKET": notify_socket.path})
    d.start()
    wait_for(lambda: "READY=1" in notify_socket.lines(), what="READY=1")
    status_lines = [l for l in notify_socket.lines() if l.startswith("STATUS=")]
    assert any(d.token_path in l for l in status_lines), status_lines
    status = wait_for(lambda: dbus_status(private_bus), what="GetStatus over D-Bus")
    assert status["state"] == "no-token"
    assert d.token_path in status["message"]
    assert status["main_imports_numpy"] == 0
    d.wait_log("no token: put the token into " + d.token_path)
    # Several poll intervals later: still up, and said it only once.
    wait_for(lambda: float(dbus_status(private_bus).get("updated", 0)) > 0, what="status again")
    assert d.proc.poll() is None
    assert d.current_output().count("no token") == 1
    # A token appears; SIGHUP picks it up (the server is down, so the next thing is a retry).
    d.set_token(TOKEN)
    d.signal(signal.SIGHUP)
    d.wait_log("configuration reloaded")
    d.wait_log("cannot reach http://127.0.0.1:9")
    assert d.stop() == 0
    assert "STOPPING=1" in notify_socket.lines()
    d.assert_token_never_shown()
