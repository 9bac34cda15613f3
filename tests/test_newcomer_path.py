"""The newcomer's path: from a fresh copy of the checkout, `make demo`'s setup step
(`tools/setup-test-env --demo`) is enough for the README's "Train a dataset without a
server" commands to work as written (``/tmp/`` in them is replaced by a private directory).
"""
import os
import re
import shutil
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def readme_block(title: str) -> list:
    text = (REPO / "README.md").read_text()
    section = text[text.index("## " + title):]
    block = re.search(r"```sh\n(.*?)```", section, re.S).group(1)
    return [line.split("  #")[0].strip() for line in block.splitlines() if line.strip()]


def fresh_copy(dest: Path) -> None:
    """The tracked and untracked, not ignored files: what a clone of this work would hold."""
    files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=str(REPO),
                           stdout=subprocess.PIPE, check=True).stdout.decode().split("\0")
    for name in filter(None, files):
        src = REPO / name
        if src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(str(src), str(dest / name))


def test_readme_train_example_works_after_the_demo_setup(tmp_path):
    clone = tmp_path / "clone"
    fresh_copy(clone)
    assert not (clone / ".venv").exists()
    setup = subprocess.run(["tools/setup-test-env", "--demo"], cwd=str(clone), stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, universal_newlines=True, timeout=900)
    assert setup.returncode == 0, setup.stdout
    assert not (clone / ".venv" / ".ok").exists(), "the demo setup installed the test tools"
    out = tmp_path / "out"
    commands = readme_block("Train a dataset without a server")
    assert commands and all(c.startswith(".venv/bin/abrunnerctl ") for c in commands), commands
    for command in commands:
        done = subprocess.run(command.replace("/tmp/", str(out) + "/"), shell=True,
                              cwd=str(clone), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              universal_newlines=True, timeout=900,
                              env=dict(os.environ, PYTHONDONTWRITEBYTECODE="1"))
        assert done.returncode == 0, "%s:\n%s" % (command, done.stdout[-2000:])
    written = {p.name for p in (out / "out").iterdir()}
    assert {"ab-real-small.history", "predictions.json", "result.json"} <= written, written  # as the README says
    assert "Gaia history: 11 transformations" in done.stdout
