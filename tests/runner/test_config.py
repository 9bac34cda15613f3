"""Configuration: every problem named with key and line, exit 78, token file checks,
and the token never shown anywhere (all captured output is grepped for it)."""
import os
import subprocess
import sys

import pytest

from abrunnerd import config

TOKEN = "tok-SECRET-3f9a1c77e2"
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def write(tmp_path, text, name="abrunnerd.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def run_daemon(cfg_path, *extra, timeout=30):
    return subprocess.run([sys.executable, "-m", "abrunnerd.daemon", "--config", cfg_path] + list(extra),
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout, cwd=ROOT,
                          env=dict(os.environ, ABRUNNERD_DBUS_ADDRESS="none"))


def test_unknown_key_names_key_and_line(tmp_path):
    path = write(tmp_path, "server_url: http://127.0.0.1:1\n# comment\npoll_intervall: 5\n")
    with pytest.raises(config.ConfigError) as info:
        config.load_config(path)
    assert "line 3: key 'poll_intervall': unknown key" in str(info.value)


def test_wrong_type_names_key_and_line(tmp_path):
    path = write(tmp_path, "server_url: http://127.0.0.1:1\nmax_workers: many\n")
    with pytest.raises(config.ConfigError) as info:
        config.load_config(path)
    assert "line 2: key 'max_workers': must be a whole number" in str(info.value)


def test_all_problems_reported_together(tmp_path):
    path = write(tmp_path, "server_url: http://127.0.0.1:1\nnice: 30\nverify_tls: 1\nfoo: 2\n")
    with pytest.raises(config.ConfigError) as info:
        config.load_config(path)
    text = str(info.value)
    assert "line 2: key 'nice'" in text and "line 3: key 'verify_tls'" in text and "line 4: key 'foo'" in text


def test_plain_http_to_remote_host_refused_unless_allowed(tmp_path):
    with pytest.raises(config.ConfigError) as info:
        config.load_config(write(tmp_path, "server_url: http://jobs.example.org\n"))
    assert "allow_insecure_http" in str(info.value)
    cfg = config.load_config(write(tmp_path, "server_url: http://jobs.example.org\nallow_insecure_http: true\n"))
    assert cfg.server_url == "http://jobs.example.org"


def test_defaults_and_sizes(tmp_path):
    cfg = config.load_config(write(tmp_path, "server_url: https://x.example/\nmax_memory: 1.5G\n"))
    assert cfg.server_url == "https://x.example"
    assert cfg.max_memory == int(1.5 * 2 ** 30)
    assert cfg.work_dir == "/var/lib/abrunnerd" and cfg.token_file == "/etc/abrunnerd/token"
    assert cfg.max_workers == (os.cpu_count() or 1)


def test_inline_token_is_hidden_in_repr(tmp_path):
    cfg = config.load_config(write(tmp_path, "server_url: http://127.0.0.1:1\ntoken: %s\n" % TOKEN))
    assert cfg.token.reveal() == TOKEN
    assert TOKEN not in repr(cfg) and TOKEN not in str(cfg.token)


def test_token_in_wrong_type_is_not_echoed(tmp_path):
    with pytest.raises(config.ConfigError) as info:
        config.load_config(write(tmp_path, "server_url: http://127.0.0.1:1\ntoken: [%s]\n" % TOKEN))
    assert TOKEN not in str(info.value)


@pytest.mark.parametrize("mode,ok", [(0o600, True), (0o640, True), (0o644, False), (0o604, False)])
def test_token_file_permissions(tmp_path, mode, ok):
    token = tmp_path / "token"
    token.write_text(TOKEN + "\n")
    os.chmod(str(token), mode)
    cfg = config.load_config(write(tmp_path, "server_url: http://127.0.0.1:1\ntoken_file: %s\n" % token))
    if ok:
        assert config.load_token(cfg).reveal() == TOKEN
    else:
        with pytest.raises(config.ConfigError) as info:
            config.load_token(cfg)
        assert "chmod 0640" in str(info.value) and TOKEN not in str(info.value)


def test_missing_token_file_means_idle(tmp_path):
    cfg = config.load_config(write(tmp_path, "server_url: http://127.0.0.1:1\ntoken_file: %s\n"
                                   % (tmp_path / "absent")))
    assert config.load_token(cfg) is None


def test_daemon_exits_78_with_key_and_line(tmp_path):
    path = write(tmp_path, "server_url: http://127.0.0.1:1\ntoken: %s\nping_interval: soon\n" % TOKEN)
    proc = run_daemon(path)
    assert proc.returncode == config.EX_CONFIG
    err = proc.stderr.decode()
    assert "line 3: key 'ping_interval'" in err and path in err
    assert TOKEN not in err + proc.stdout.decode()


def test_daemon_refuses_world_readable_token_with_fix(tmp_path):
    token = tmp_path / "token"
    token.write_text(TOKEN)
    os.chmod(str(token), 0o644)
    path = write(tmp_path, "server_url: http://127.0.0.1:1\ntoken_file: %s\nwork_dir: %s\n"
                 % (token, tmp_path / "work"))
    proc = run_daemon(path)
    assert proc.returncode == config.EX_CONFIG
    err = proc.stderr.decode()
    assert "chmod 0640" in err and TOKEN not in err + proc.stdout.decode()


def test_missing_config_file(tmp_path):
    proc = run_daemon(str(tmp_path / "nope.yaml"))
    assert proc.returncode == config.EX_CONFIG
    assert "cannot read the configuration file" in proc.stderr.decode()
