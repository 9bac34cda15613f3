"""Two network namespaces joined by a veth pair, with loss, delay and partition.

The runner goes in one namespace and the job server in the other, so faults on the
link hit real TCP.  Addresses are 10.200.X.1 and 10.200.X.2 (/30), which exist only
inside these namespaces; nothing here routes anywhere else.

Fault mechanisms, best first:

* ``tc netem`` (loss and delay) when the kernel has it;
* otherwise loss by an nftables ``numgen random`` drop rule on both ends and delay
  by a ``tbf`` rate limit (queueing delay), because some kernels (this project's CI
  VM among them: ``CONFIG_NET_SCH_NETEM`` is not set) ship no netem.
  :attr:`NetPair.mechanism` says which one ran, and the report prints it.

A partition is an nftables rule dropping every packet on both ends: TCP connections
stay open and retransmit, exactly as a pulled cable looks to both sides.
"""
import atexit
import os
import random
import re
import shutil
import signal
import subprocess
from typing import Dict, List, Optional

_PREFIX = "abrrel"
_live: Dict[str, "NetPair"] = {}


def available() -> Optional[str]:
    """None when namespaces can be used here, else the reason they cannot."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    for tool in ("ip", "tc", "nft"):
        if shutil.which(tool) is None:
            return "%s is not installed (tools/apt-packages.txt: iproute2, nftables)" % tool
    return None


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["ip"] + list(args), check=check, capture_output=True, text=True)


def _in(ns: str, argv: List[str], check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", "netns", "exec", ns] + argv, check=check,
                          capture_output=True, text=True)


def has_netem() -> bool:
    """Whether the kernel knows the netem qdisc (probed on a throwaway namespace)."""
    ns = "%s-probe-%d" % (_PREFIX, os.getpid())
    _ip("netns", "add", ns)
    try:
        r = _in(ns, ["tc", "qdisc", "add", "dev", "lo", "root", "netem", "delay", "1ms"],
                check=False)
        return r.returncode == 0
    finally:
        _ip("netns", "del", ns, check=False)


class NetPair:
    """Namespaces ``a`` (runner side, ``addr_a``) and ``b`` (server side, ``addr_b``)."""

    def __init__(self) -> None:
        tag = "%d-%04x" % (os.getpid(), random.getrandbits(16))
        self.ns_a = "%s-%s-a" % (_PREFIX, tag)
        self.ns_b = "%s-%s-b" % (_PREFIX, tag)
        short = "%04x%02x" % (random.getrandbits(16), os.getpid() % 256)
        self.if_a, self.if_b = "abr%sa" % short, "abr%sb" % short  # <= 15 chars
        subnet = random.randrange(1, 250)
        base = random.randrange(0, 63) * 4
        self.addr_a = "10.200.%d.%d" % (subnet, base + 1)
        self.addr_b = "10.200.%d.%d" % (subnet, base + 2)
        self.netem = has_netem()
        self.mechanism = "tc netem" if self.netem else "nftables numgen drop + tbf shaping"
        self._up = False

    # -- lifecycle -------------------------------------------------------------
    def __enter__(self) -> "NetPair":
        _live[self.ns_a] = self
        try:
            _ip("netns", "add", self.ns_a)
            _ip("netns", "add", self.ns_b)
            _ip("link", "add", self.if_a, "type", "veth", "peer", "name", self.if_b)
            _ip("link", "set", self.if_a, "netns", self.ns_a)
            _ip("link", "set", self.if_b, "netns", self.ns_b)
            for ns, dev, addr in ((self.ns_a, self.if_a, self.addr_a),
                                  (self.ns_b, self.if_b, self.addr_b)):
                _ip("-n", ns, "addr", "add", addr + "/30", "dev", dev)
                _ip("-n", ns, "link", "set", dev, "up")
                _ip("-n", ns, "link", "set", "lo", "up")
                _in(ns, ["nft", "add", "table", "inet", "abrfault"])
                _in(ns, ["nft", "add", "chain", "inet", "abrfault", "out",
                         "{ type filter hook output priority 0 ; }"])
            self._up = True
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Kill what runs inside, then delete both namespaces (the veth goes with them)."""
        for ns in (self.ns_a, self.ns_b):
            kill_namespace_processes(ns)
            _ip("netns", "del", ns, check=False)
        _live.pop(self.ns_a, None)
        self._up = False

    # -- running things inside -------------------------------------------------
    def argv_a(self, argv: List[str]) -> List[str]:
        return ["ip", "netns", "exec", self.ns_a] + list(argv)

    def argv_b(self, argv: List[str]) -> List[str]:
        return ["ip", "netns", "exec", self.ns_b] + list(argv)

    # -- faults ------------------------------------------------------------------
    def _flush(self) -> None:
        for ns, dev in ((self.ns_a, self.if_a), (self.ns_b, self.if_b)):
            _in(ns, ["nft", "flush", "chain", "inet", "abrfault", "out"])
            _in(ns, ["tc", "qdisc", "del", "dev", dev, "root"], check=False)

    def degrade(self, loss_percent: int = 30, delay_ms: int = 100) -> None:
        """Lose ``loss_percent`` of packets each way and add latency."""
        self._flush()
        for ns, dev in ((self.ns_a, self.if_a), (self.ns_b, self.if_b)):
            if self.netem:
                _in(ns, ["tc", "qdisc", "add", "dev", dev, "root", "netem",
                         "loss", "%d%%" % loss_percent, "delay", "%dms" % delay_ms])
            else:
                _in(ns, ["nft", "add", "rule", "inet", "abrfault", "out", "numgen",
                         "random", "mod", "100", "<", str(loss_percent), "drop"])
                # 2 Mbit/s with a queue worth delay_ms: bulk transfers queue up to it.
                _in(ns, ["tc", "qdisc", "add", "dev", dev, "root", "tbf", "rate", "2mbit",
                         "burst", "16kb", "latency", "%dms" % max(delay_ms, 20)])

    def partition(self) -> None:
        """Drop every packet both ways (connections stay open and retransmit)."""
        self._flush()
        for ns in (self.ns_a, self.ns_b):
            _in(ns, ["nft", "add", "rule", "inet", "abrfault", "out", "oifname",
                     self.if_a if ns == self.ns_a else self.if_b, "drop"])

    def heal(self) -> None:
        self._flush()

    def reachable(self, port: int, timeout: float = 2.0) -> bool:
        """Can namespace ``a`` open a TCP connection to ``addr_b:port``?"""
        code = ("import socket,sys\ns=socket.socket();s.settimeout(%r)\n"
                "sys.exit(0 if s.connect_ex((%r,%d))==0 else 1)" % (timeout, self.addr_b, port))
        r = subprocess.run(self.argv_a(["python3", "-c", code]), capture_output=True,
                           timeout=timeout + 10)
        return r.returncode == 0


def kill_namespace_processes(ns: str) -> None:
    r = _ip("netns", "pids", ns, check=False)
    for pid in r.stdout.split():
        try:
            os.kill(int(pid), signal.SIGKILL)
        except (ProcessLookupError, ValueError):
            pass


def cleanup_stale() -> None:
    """Remove namespaces of this suite whose creating process is gone (earlier crashes)."""
    r = _ip("netns", "list", check=False)
    for line in r.stdout.splitlines():
        m = re.match(r"(%s-(\d+)-[0-9a-f]{4}-[ab])\b" % _PREFIX, line)
        if not m:
            continue
        pid = int(m.group(2))
        if pid != os.getpid() and not os.path.exists("/proc/%d" % pid):
            kill_namespace_processes(m.group(1))
            _ip("netns", "del", m.group(1), check=False)


@atexit.register
def _cleanup_live() -> None:
    for pair in list(_live.values()):
        pair.close()
