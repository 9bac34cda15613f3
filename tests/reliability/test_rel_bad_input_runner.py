"""Bad input on the runner's side: configuration, token file, feature bundles and
malformed server answers.  Each case records the exact text the user reads.

The configuration cases go through ``abrunnerd.config`` (what the daemon prints on
exit 78 is ``str(ConfigError)``; test_rel_daemon_cli checks the CLI prints it).
Malformed *server answers* cannot come from the real job server, which never sends
them, so those cases use a tiny local HTTP server that misbehaves on purpose.
"""
import http.server
import json
import lzma
import os
import struct
import threading

import pytest

from rel_harness import leaks, record

import abrunnerd.config as config
import abrunnerd.features_bundle as fb

TOKEN = leaks.register("bad1nput" + "5e" * 28)
GOOD = "server_url: https://jobs.example.org\n"

# (case name, YAML text, fragments the message must contain)
CONFIG_CASES = [
    ("config: broken YAML", "server_url: [https://x\npoll_interval: 5\n", ["not valid YAML", "line"]),
    ("config: not a mapping", "- server_url\n- https://x\n", ["must be a mapping"]),
    ("config: wrong type (number as text)", GOOD + "poll_interval: soon\n",
     ["poll_interval", "number of seconds", "line 2"]),
    ("config: wrong type (bool as text)", GOOD + "verify_tls: 'yes please'\n",
     ["verify_tls", "true or false"]),
    ("config: wrong type (list for a string)", "server_url: [a, b]\n", ["server_url", "URL"]),
    ("config: unknown key (typo)", GOOD + "pol_interval: 5\n", ["pol_interval", "unknown key"]),
    ("config: required key missing", "poll_interval: 5\n", ["server_url", "missing"]),
    ("config: out of range (max_workers 0)", GOOD + "max_workers: 0\n", ["max_workers", "must be from 1 to 1024"]),
    ("config: out of range (nice 40)", GOOD + "nice: 40\n", ["nice", "from 0 to 19"]),
    ("config: bad size", GOOD + "max_memory: lots\n", ["max_memory", "size"]),
    ("config: negative interval", GOOD + "ping_interval: -3\n", ["ping_interval", "must be from 1 to 3600"]),
    ("config: not a URL", "server_url: jobs.example.org\n", ["server_url", "http(s) URL"]),
    ("config: ftp URL", "server_url: ftp://jobs.example.org\n", ["server_url", "http(s) URL"]),
    ("config: plain http to a non-loopback host", "server_url: http://10.200.1.2:8080\n",
     ["unencrypted", "allow_insecure_http"]),
    ("config: token and token_file both set",
     GOOD + "token: %s\ntoken_file: /etc/abrunnerd/token\n" % TOKEN, ["either 'token' or 'token_file'"]),
    ("config: empty token value", GOOD + "token: '   '\n", ["token", "empty"]),
    ("config: token of the wrong type", GOOD + "token: [%s]\n" % TOKEN, ["token", "must be"]),
    ("config: several problems at once", "poll_interval: x\nnice: 99\nbogus: 1\n",
     ["poll_interval", "nice", "bogus", "server_url"]),
    ("config: log level unknown", GOOD + "log_level: loud\n", ["log_level", "debug, info"]),
    ("config: empty file", "", ["server_url", "missing"]),
]


@pytest.mark.parametrize("name,text,fragments", CONFIG_CASES, ids=[c[0] for c in CONFIG_CASES])
def test_config_errors_are_clear(tmp_path, name, text, fragments):
    path = tmp_path / "abrunnerd.yaml"
    path.write_text(text)
    with record.case("bad_input", name) as c:
        with pytest.raises(config.ConfigError) as info:
            config.load_config(str(path))
        msg = str(info.value)
        c.message = msg.replace(str(tmp_path), "<dir>")
        assert str(path) in msg, "the message must name the file"
        for frag in fragments:
            assert frag in msg, "message %r lacks %r" % (msg, frag)
        assert not leaks.find_in_text(msg, [TOKEN]), "the message echoes the token"


def test_config_file_missing(tmp_path):
    with record.case("bad_input", "config: file missing") as c:
        with pytest.raises(config.ConfigError) as info:
            config.load_config(str(tmp_path / "nope.yaml"))
        c.message = str(info.value).replace(str(tmp_path), "<dir>")
        assert "cannot read" in c.message and "nope.yaml" in c.message


def _token_cfg(tmp_path, token_text, mode, symlink=False):
    real = tmp_path / "token.real"
    real.write_text(token_text)
    os.chmod(real, mode)
    path = tmp_path / "token"
    if symlink:
        path.symlink_to(real)
    else:
        real.rename(path)
    cfg_path = tmp_path / "abrunnerd.yaml"
    cfg_path.write_text(GOOD + "token_file: %s\n" % path)
    return config.load_config(str(cfg_path))


@pytest.mark.parametrize("name,mode,symlink,fragment", [
    ("token file: readable by every user (0644)", 0o644, False, "chmod 0640"),
    ("token file: writable by every user (0666)", 0o666, False, "every user"),
    ("token file: a symlink", 0o600, True, "symbolic link, not a regular file"),
])
def test_token_file_refused(tmp_path, name, mode, symlink, fragment):
    cfg = _token_cfg(tmp_path, TOKEN + "\n", mode, symlink)
    with record.case("bad_input", name) as c:
        with pytest.raises(config.ConfigError) as info:
            config.load_token(cfg)
        c.message = str(info.value).replace(str(tmp_path), "<dir>")
        assert fragment in c.message
        assert not leaks.find_in_text(c.message, [TOKEN])


def test_empty_token_file_means_not_configured(tmp_path):
    # An empty token is "not configured yet": the daemon idles and says which file to
    # edit (checked on the real daemon in test_rel_daemon_cli), it does not crash.
    cfg = _token_cfg(tmp_path, "\n  \n", 0o600)
    assert config.load_token(cfg) is None  # what the daemon then says: test_rel_security


# -- features bundles ---------------------------------------------------------------

def _bundle():
    docs = [("%08d-0000-4000-8000-000000000000" % i,
             {"lowlevel": {"mfcc": {"mean": [float(i), 0.5, 1.5]}}, "metadata": {"v": "x"}},
             "artist %d" % (i % 3)) for i in range(20)]
    return fb.encode_bundle(docs)


def _payload_bundle(payload, declared=None):
    header = struct.pack("<4sBBHQ", b"ABFB", 1, 1, 0, len(payload) if declared is None else declared)
    return header + lzma.compress(payload, preset=0)


def _payload_of(bundle):
    """The decompressed payload of a real bundle (outer header, then xz)."""
    return lzma.decompress(bundle[struct.calcsize("<4sBBHQ"):])


def _with_header(bundle, edit):
    """Rebuild ``bundle`` after ``edit(header_dict)`` on its JSON header (u32 length prefix)."""
    payload = _payload_of(bundle)
    (n,) = struct.unpack_from("<I", payload)
    header = json.loads(payload[4:4 + n])
    edit(header)
    raw = json.dumps(header).encode()
    return _payload_bundle(struct.pack("<I", len(raw)) + raw + payload[4 + n:])


def _garbage_header(bundle):
    payload = _payload_of(bundle)
    (n,) = struct.unpack_from("<I", payload)
    return _payload_bundle(payload[:4] + b"{not json" + b"\0" * (n - 9) + payload[4 + n:])


def _bad_record(header):
    header["records"][0][2] = 99


def _corrupt_middle(data):
    b = bytearray(data)
    mid = len(b) // 2
    for i in range(mid, mid + 16):
        b[i] ^= 0xA5
    return bytes(b)


BUNDLE_CASES = [
    ("bundle: truncated to half", lambda b: b[:len(b) // 2], "truncated"),
    ("bundle: header only", lambda b: b[:16], "truncated"),
    ("bundle: shorter than its header", lambda b: b[:7], "truncated"),
    ("bundle: corrupted bytes inside the xz stream", _corrupt_middle, "corrupt"),
    ("bundle: an HTML error page instead", lambda b: b"<html><body>502 Bad Gateway</body></html>",
     "not a features bundle"),
    ("bundle: unknown future version", lambda b: b[:4] + b"\x07" + b[5:], "upgrade abrunnerd"),
    ("bundle: declares 1 TiB (decompression bomb)",
     lambda b: _payload_bundle(b"\0" * 1000, declared=1 << 40), "more than the limit"),
    ("bundle: 64 MiB of zeros declared as 1 KiB (decompression bomb)",
     lambda b: _payload_bundle(b"\0" * (64 << 20), declared=1024), "corrupt"),
    ("bundle: valid xz, garbage header JSON", _garbage_header, ""),
    ("bundle: record pointing at a missing skeleton", lambda b: _with_header(b, _bad_record), ""),
    ("bundle: trailing bytes after the last block", lambda b: _payload_bundle(_payload_of(b) + b"XXXX"), ""),
    ("bundle: float block cut short", lambda b: _payload_bundle(_payload_of(b)[:-6]), ""),
]


@pytest.mark.parametrize("name,mutate,fragment", BUNDLE_CASES, ids=[c[0] for c in BUNDLE_CASES])
def test_bad_bundles_are_refused_before_any_record(name, mutate, fragment):
    data = mutate(_bundle())
    with record.case("bad_input", name) as c:
        with pytest.raises(fb.BundleError) as info:
            # Nothing may be yielded before the whole bundle has been checked.
            list(fb.decode_bundle(data, max_decompressed=256 << 20))
        c.message = str(info.value)
        assert fragment in c.message, c.message


def test_good_bundle_round_trips():
    # The control case: the mutations above are what breaks the bundles, not the codec.
    records = list(fb.decode_bundle(_bundle()))
    assert len(records) == 20 and records[3][1]["lowlevel"]["mfcc"]["mean"][0] == 3.0
