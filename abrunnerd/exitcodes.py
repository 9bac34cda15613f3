"""Every exit status of ``abrunnerd`` and ``abrunnerctl``, what it means and what to do.

The man pages' EXIT STATUS sections and the table in docs/runner.md are generated from
``TABLE`` (``python3 -m abrunnerd.exitcodes man abrunnerd|abrunnerctl`` / ``markdown``)
and a test checks that they, and the constants the code returns, agree with it.
Also: the user-facing hints that follow a mistake with the token or the files'
permissions (``config_problem``), so every front end words them the same way.
"""
import os
import sys
from typing import Any, List, NamedTuple, Tuple

OK = 0
USAGE = 2  # argparse
SOME_FAILED = 3  # predict: some documents could not be predicted
EX_USAGE = 64  # predict's own usage errors
DATAERR = 65  # EX_DATAERR
NOINPUT = 66  # EX_NOINPUT
CANTCREAT = 73  # EX_CANTCREAT
UNAVAILABLE = 69  # EX_UNAVAILABLE
SOFTWARE = 70  # EX_SOFTWARE
NOPERM = 77  # EX_NOPERM
CONFIG = 78  # EX_CONFIG
INTERRUPTED = 130  # 128 + SIGINT
TERMINATED = 143  # 128 + SIGTERM


class ExitCode(NamedTuple):
    code: int
    programs: Tuple[str, ...]
    meaning: str
    action: str


D, C = "abrunnerd", "abrunnerctl"
TABLE = [
    ExitCode(OK, (D, C), "success; abrunnerd: stopped on request, or --once finished, or --check-config "
             "found the files valid", "nothing"),
    ExitCode(USAGE, (D, C), "wrong command-line usage", "see --help"),
    ExitCode(SOME_FAILED, (C,), "predict: some documents could not be predicted (each is named on "
             "standard error with the descriptor); the others were written", "fix or drop those documents"),
    ExitCode(EX_USAGE, (C,), "predict: inconsistent arguments (the message says which)", "see predict --help"),
    ExitCode(DATAERR, (C,), "train / inspect-history / predict: the dataset or a .history file is unusable "
             "(the message names the file and the field or transformation)", "fix or replace that file"),
    ExitCode(NOINPUT, (C,), "inspect-history / predict: a file does not exist or cannot be read", "check the path"),
    ExitCode(UNAVAILABLE, (C,), "the daemon is not running (status, pause, resume, cancel) or the job "
             "server cannot be reached or refused the request (check-config, jobs); or, any command, a "
             "library it needs is missing (the command stays listed in --help as \"(unavailable: ...)\" and "
             "the message names the Python module and the Debian package)",
             "systemctl status abrunnerd; journalctl -u abrunnerd; check server_url; or install the "
             "package the message names"),
    ExitCode(SOFTWARE, (D,), "an unexpected error (a bug); the traceback is in the journal",
             "report it with the journal lines; systemd restarts the service and the job resumes"),
    ExitCode(NOPERM, (D, C), "abrunnerd --once: the server rejected the token; abrunnerctl: the command "
             "needs root or group abrunner (the configuration, the token or the runner's controls), or the "
             "server rejected the token",
             "sudo, or 'sudo adduser $USER abrunner' and log in again; a rejected token: put a valid one "
             "into /etc/abrunnerd/token"),
    ExitCode(CONFIG, (D, C), "the configuration or the token file is invalid (the message names the file, "
             "the key and the line, or the token file and the chmod/chown that fixes it), or "
             "(abrunnerctl check-config, jobs) there is no token yet; systemd does not restart the "
             "service on this status",
             "fix the file, then 'systemctl restart abrunnerd' (after a failed start) or "
             "'systemctl reload abrunnerd' (while it runs)"),
    ExitCode(CANTCREAT, (C,), "predict: an output cannot be written", "check the output path and the disk"),
    ExitCode(INTERRUPTED, (C,), "train / predict: interrupted (Ctrl-C)", "run it again"),
    ExitCode(TERMINATED, (C,), "predict: terminated (SIGTERM)", "run it again"),
]


def codes_for(program: str) -> List[ExitCode]:
    return [e for e in TABLE if program in e.programs]


def _roff(text: str) -> str:
    return text.replace("\\", "\\\\").replace("-", "\\-").replace("'", "\\(aq")


def man_section(program: str) -> str:
    """The roff body of the EXIT STATUS section (between the marker comments)."""
    lines = []
    for e in codes_for(program):
        lines += [".TP", ".B %d" % e.code, _roff(e.meaning) + ".", "What to do: " + _roff(e.action) + "."]
    if program == D:
        lines += [".TP", ".B other", "Killed by a signal or the watchdog; systemd restarts the service and "
                  "the job resumes from its checkpoint."]
    return "\n".join(lines) + "\n"


def markdown_table() -> str:
    rows = ["| status | program | meaning | what to do |", "|---|---|---|---|"]
    for e in TABLE:
        rows.append("| %d | %s | %s | %s |" % (e.code, ", ".join("`%s`" % p for p in e.programs), e.meaning,
                                                e.action))
    return "\n".join(rows) + "\n"


MAN_BEGIN = '.\\" BEGIN exit codes (generated: python3 -m abrunnerd.exitcodes man %s)'
MAN_END = '.\\" END exit codes'


def config_problem(exc: Any, program: str) -> Tuple[str, int]:
    """The one line (without the program prefix) and the exit status for a ConfigError."""
    from abrunnerd.config import TokenError

    text = str(exc)
    path = getattr(exc, "path", "") or ""
    if "Permission denied" in text and program != "abrunnerd" and os.geteuid() != 0 and not _in_group():
        return ("%s needs root or group abrunner (%s); run it with sudo, or 'sudo adduser %s abrunner' "
                "and log in again" % (program, text, os.environ.get("USER") or "$USER"), NOPERM)
    if isinstance(exc, TokenError):
        if "Permission denied" in text:
            text += ("; the daemon runs as user abrunner: run 'chown root:abrunner TOKEN_FILE && "
                     "chmod 0640 TOKEN_FILE'").replace("TOKEN_FILE", _token_file(exc))
        return "token problem: " + text, CONFIG
    return "configuration error in %s" % text if path else text, CONFIG


def _in_group() -> bool:
    import grp

    try:
        return grp.getgrnam("abrunner").gr_gid in os.getgroups() + [os.getgid()]
    except KeyError:
        return False


def _token_file(exc: Any) -> str:
    text = str(exc)
    for word in text.replace("(", " ").split():
        if word.startswith("/") and "token" in word:
            return word
    return "/etc/abrunnerd/token"


def main(argv: List[str]) -> int:
    if argv[:1] == ["man"] and len(argv) == 2:
        sys.stdout.write(man_section(argv[1]))
    elif argv == ["markdown"]:
        sys.stdout.write(markdown_table())
    else:
        print("usage: python3 -m abrunnerd.exitcodes man abrunnerd|abrunnerctl | markdown", file=sys.stderr)
        return USAGE
    return OK


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
