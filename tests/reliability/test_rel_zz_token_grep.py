"""The suite-wide token grep: runs last (file order) over everything the suite captured.

Every process the suite started wrote its stdout/stderr (journal lines, tracebacks of
crashes, server logs) into the captures directory, the security cases added D-Bus
replies and stored status pings there, and the server databases are read whole.  No
token any case used may appear in any of it, whole or as a 16-character piece.
"""
from pathlib import Path

from rel_harness import leaks, record
from rel_harness.record import captures_dir


def test_no_token_in_any_captured_output():
    paths = sorted(p for p in captures_dir().rglob("*") if p.is_file())
    paths += [Path(f) for f in sorted(leaks.files()) if Path(f).exists()]
    for f in sorted(leaks.files()):
        for suffix in ("-wal",):
            if Path(f + suffix).exists():
                paths.append(Path(f + suffix))
    tokens = leaks.tokens()
    with record.case("security", "no token in any captured output of the suite") as c:
        hits = leaks.find_in_files(paths, tokens)
        c.message = "%d files, %d tokens checked; journald is not running in this container, so the " \
                    "journal lines are checked as the daemon's stderr" % (len(paths), len(tokens))
        c.extra = {"files": len(paths), "tokens": len(tokens)}
        assert not hits, "token found in: %s" % hits[:10]
        assert tokens, "no token was registered: nothing was checked"
