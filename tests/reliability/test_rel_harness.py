"""The fault harnesses do what they claim: otherwise every other figure is worthless."""
import errno
import subprocess
import sys

import pytest

from rel_harness import leaks
from rel_harness.procs import Proc, wait_for

SERVE = ("import http.server,sys\n"
         "s=http.server.HTTPServer((sys.argv[1],0),http.server.SimpleHTTPRequestHandler)\n"
         "print(s.server_address[1],flush=True)\ns.serve_forever()\n")


def test_netpair_connects_degrades_partitions_and_heals(netpair, tmp_path):
    server = subprocess.Popen(netpair.argv_b([sys.executable, "-c", SERVE, netpair.addr_b]),
                              stdout=subprocess.PIPE, cwd=str(tmp_path), text=True)
    try:
        port = int(server.stdout.readline())
        assert netpair.reachable(port)
        netpair.partition()
        assert not netpair.reachable(port, timeout=2)
        netpair.degrade(loss_percent=30, delay_ms=100)
        # With 30 % loss each way a connect still gets through within TCP's retries.
        assert wait_for(lambda: netpair.reachable(port, timeout=5), 60, what="connect under loss")
        netpair.heal()
        assert netpair.reachable(port)
    finally:
        server.kill()
        server.wait()


def test_netpair_namespaces_are_isolated_from_the_host(netpair):
    # The host's loopback is not the namespace's: nothing leaks out of the pair.
    out = subprocess.run(netpair.argv_a(["ip", "-o", "addr"]), capture_output=True, text=True)
    addrs = out.stdout
    assert netpair.addr_a in addrs and "eth0" not in addrs


def test_small_fs_fills_and_releases(small_fs_factory):
    fs = small_fs_factory(2 << 20)
    fs.fill(leave_bytes=0)
    with pytest.raises(OSError) as info:
        with open(fs.path / "x", "wb") as f:
            f.write(b"\0" * (256 << 10))
            f.flush()
    assert info.value.errno == errno.ENOSPC
    fs.release()
    (fs.path / "y").write_bytes(b"\0" * (256 << 10))


def test_proc_kill9_and_restart_capture_output():
    p = Proc([sys.executable, "-c", "import time;print('up',flush=True);time.sleep(600)"],
             name="harness-sleeper").start()
    try:
        wait_for(lambda: "up" in p.last_output(), 30, what="sleeper output")
        first = p.pid
        p.kill9()
        assert not p.alive() and p.popen.returncode == -9
        p.start()
        assert p.pid != first and p.alive()
        wait_for(lambda: p.output().count("up") == 2, 30, what="second start output")
    finally:
        p.stop()


def test_leak_finder_sees_whole_tokens_and_long_pieces(tmp_path):
    token = "a" * 8 + "0123456789abcdef0123456789abcdef" + "b" * 24
    (tmp_path / "log").write_text("Authorization: Token %s\n" % token[10:30])
    (tmp_path / "clean").write_text("token %s… (prefix only)\n" % token[:8])
    hits = leaks.find_in_files([tmp_path / "log", tmp_path / "clean"], [token])
    assert [h[0] for h in hits] == [str(tmp_path / "log")]
