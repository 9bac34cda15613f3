"""Gaia's whole 1,728-configuration template grid on essentia-real-1: ours vs Gaia's recorded run.

Runs ``abrunnerctl train`` on the class folders of ../shared/data/essentia-real-1 (as
Gaia's ``train_model_from_sigs`` took them: 90 Essentia outputs, the 2.1-beta5 template,
6 preprocessing sets x poly/RBF x 9 C x 8 gamma x balanceClasses, 5 folds, seed 1) and
measures, for the command and every process it starts:

* CPU seconds (user + system) of the whole process tree, from ``getrusage(RUSAGE_CHILDREN)``
  (what GNU time reports for Gaia: the workers are waited for, so they are included);
* peak RSS of the largest single process (GNU time's "maximum resident set size", the
  figure Gaia's timing.json holds) and the peak of the sum over the whole tree, sampled
  from /proc every 20 ms.

Gaia's figures are read from gaia-reference/timing.json (Gaia 2.4.6 on a 2-core VM).
Usage: .venv/bin/python benchmarks/gaia_grid.py [--jobs N] [--keep OUTDIR]
"""
import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.path.join(os.path.dirname(ROOT), "shared", "data", "essentia-real-1")
PAGE = os.sysconf("SC_PAGE_SIZE")


def _tree_rss(root_pid):
    """Sum of RSS (bytes) of root_pid and all its descendants."""
    children = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % entry) as f:
                fields = f.read().rsplit(")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(entry))
        except (OSError, IndexError, ValueError):
            continue
    total, stack = 0, [root_pid]
    while stack:
        pid = stack.pop()
        try:
            with open("/proc/%d/statm" % pid) as f:
                total += int(f.read().split()[1]) * PAGE
        except (OSError, ValueError, IndexError):
            pass
        stack.extend(children.get(pid, []))
    return total


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=2, help="worker processes (Gaia's run used 2)")
    parser.add_argument("--keep", help="keep the outputs in this directory")
    args = parser.parse_args()
    timing_path = os.path.join(DATA, "gaia-reference", "timing.json")
    if not os.path.exists(timing_path):
        sys.exit("missing %s (../shared beside the clone)" % timing_path)
    gaia = json.load(open(timing_path))
    work = tempfile.mkdtemp(prefix="gaia-grid-")
    try:
        classes = os.path.join(work, "classes")
        os.mkdir(classes)
        for cls in ("instrumental", "voice"):
            os.symlink(os.path.join(DATA, cls), os.path.join(classes, cls))
        out = args.keep or os.path.join(work, "out")
        if os.path.exists(os.path.join(out, "checkpoint.jsonl")):
            os.remove(os.path.join(out, "checkpoint.jsonl"))  # a full run, not a resumed one
        env = dict(os.environ, PYTHONPATH=ROOT)
        cmd = [sys.executable, "-m", "abrunnerd.ctl", "train", classes, "--name", "voice_instrumental",
               "--out", out, "--jobs", str(args.jobs)]
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.monotonic()
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                universal_newlines=True)
        peak_sum = 0
        while proc.poll() is None:
            peak_sum = max(peak_sum, _tree_rss(proc.pid))
            time.sleep(0.02)
        wall = time.monotonic() - start
        stdout = proc.stdout.read()
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if proc.returncode != 0:
            sys.exit("abrunnerctl train failed with exit %d" % proc.returncode)
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        peak_single_kb = after.ru_maxrss
        result = json.load(open(os.path.join(out, "result.json")))
        n_configs = len(result["combinations"])
    finally:
        shutil.rmtree(work, ignore_errors=True)
    gaia_cpu, gaia_kb = gaia["cpu_s"], gaia["peak_rss_kb"]
    print(stdout.strip().splitlines()[-1])
    print("%d configurations x 5 folds, %d worker processes, load average at the end: %s"
          % (n_configs, args.jobs, open("/proc/loadavg").read().split()[:3]))
    print("| | Gaia 2.4.6 (timing.json) | abrunnerctl train | ratio |")
    print("|---|---|---|---|")
    print("| CPU s, all processes | %.1f | %.1f | %.0fx less |" % (gaia_cpu, cpu, gaia_cpu / cpu))
    print("| peak RSS, largest process | %.0f MB | %.0f MB | 1/%.0f |"
          % (gaia_kb / 1024.0, peak_single_kb / 1024.0, gaia_kb / float(peak_single_kb)))
    print("| peak RSS, sum over the process tree | (not recorded) | %.0f MB | 1/%.0f of Gaia's largest process |"
          % (peak_sum / 1048576.0, gaia_kb * 1024.0 / peak_sum))
    print("| wall s | %.1f (loaded VM) | %.1f | |" % (gaia["wall_s"], wall))
    ok = gaia_cpu / cpu >= 50 and peak_sum <= gaia_kb * 1024.0 / 10
    print("goal (>= 50x less CPU, <= 1/10 of the memory): %s" % ("met" if ok else "NOT met"))


if __name__ == "__main__":
    main()
