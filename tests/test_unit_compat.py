"""The systemd unit against the table of directives in docs/packaging.md (systemd 237..255).

Every directive and every system call group the unit uses must be in the table with the
systemd version that introduced it, and no system call group may be newer than
Ubuntu 18.04's systemd 237: an unknown group does not just warn, it leaves an allow
list with only @default in it and the service dies at start.
"""
import re
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
UNIT = REPO / "systemd" / "abrunnerd.service"
DOC = REPO / "docs" / "packaging.md"
OLDEST_SYSTEMD = 237  # Ubuntu 18.04


def unit_settings():
    """[(directive, value)] of the unit, comments and section headers skipped."""
    out = []
    for line in UNIT.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";", "[")):
            continue
        key, _, value = line.partition("=")
        out.append((key.strip(), value.strip()))
    return out


def table():
    """{directive or @group: (since, text of the row)} from the doc's directive table."""
    text = DOC.read_text()
    start = text.index("## The unit on systemd 237 to 255")
    rows = {}
    for line in text[start:].splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 3 or not line.startswith("| `") and not line.startswith("| (not used)"):
            continue
        since, used = cells[1], not cells[0].startswith("(not used)")
        for code in re.findall(r"`([^`]+)`", cells[0]):
            for word in code.split():
                if word.startswith("@"):
                    rows[word] = (since, line)
                elif "=" in word and used:
                    rows.setdefault(word.split("=")[0], (since, line))
    return rows


def version(since: str) -> int:
    """"< 230" -> 0, "242" -> 242, "after 237 (...)" -> 238."""
    if since.startswith("<"):
        return 0
    number = int(re.search(r"\d+", since).group(0))
    return number + 1 if since.startswith("after") else number


def test_every_directive_of_the_unit_is_in_the_table():
    rows = table()
    missing = sorted({key for key, _ in unit_settings()} - set(rows))
    assert not missing, "directives without a row in docs/packaging.md: %s" % missing


def test_no_system_call_group_is_newer_than_systemd_237():
    rows = table()
    groups = [g.lstrip("~") for key, value in unit_settings() if key == "SystemCallFilter"
              for g in value.split()]
    assert groups, "the unit has no SystemCallFilter"
    for group in groups:
        assert group.startswith("@"), "single system calls are not checked here: %s" % group
        assert group in rows, "system call group %s has no row in docs/packaging.md" % group
        assert version(rows[group][0]) <= OLDEST_SYSTEMD, rows[group][1]
    assert "@system-service" not in groups


def test_directives_newer_than_237_only_harden():
    """What 237 ignores must be optional hardening, never what makes the service work."""
    rows = table()
    newer = sorted(k for k, _ in unit_settings() if version(rows[k][0]) > OLDEST_SYSTEMD)
    assert set(newer) <= {"ProtectHostname", "RestrictSUIDSGID", "ProtectKernelLogs", "ProtectClock",
                          "ProtectProc"}, newer
    for key in newer:
        assert "ignored with a warning" in rows[key][1], rows[key][1]
