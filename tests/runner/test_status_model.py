"""The status model (abrunnerd/status.py): every state's line, progress that never goes
backwards or shows another stage's figure, an ETA smoothed across pauses and restarts,
the ping-interval rule, and docs/status.md listing every state."""
import os
import re

from hypothesis import given, settings
from hypothesis import strategies as hs

from abrunnerd import status as st

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
JOB = "1f3c0000-aaaa-4bbb-8ccc-000000000001"


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def snap(**kw):
    base = {"state": st.IDLE, "job_id": "", "fraction": 0.0, "cells_done": 0, "cells_total": 0,
            "eta_seconds": -1, "message": "", "next_poll": 0, "last_result": "", "config_error": ""}
    base.update(kw)
    return base


def test_training_line_for_systemctl():
    s = snap(state="training", job_id=JOB, fraction=0.43, cells_done=620, cells_total=1440, eta_seconds=720)
    assert st.summary(s) == "training job 1f3c0000…: 43% (620/1440 cells), ETA 12 min"


def test_training_before_the_worker_reports_says_preparing_not_a_download_figure():
    s = snap(state="training", job_id=JOB, fraction=1.0, cells_done=0, cells_total=0)
    assert st.summary(s) == "training job 1f3c0000…: preparing"


def test_every_state_has_a_line_and_known_successors():
    for name, state in st.STATES.items():
        line = st.summary(snap(state=name, job_id=JOB, cells_done=5, cells_total=10, fraction=0.5))
        assert line, name
        assert set(state.next) <= set(st.STATES), name
    # stopped keeps the position; resuming shows the checkpoint's, not 0/0
    kept = snap(state=st.STOPPED, job_id=JOB, cells_done=1700, cells_total=9950, fraction=1700 / 9950)
    assert st.summary(kept) == "stopped: job 1f3c0000… kept at 17% (1700/9950 cells), resumes on the next start"
    assert st.summary(snap(state=st.STOPPED)) == "stopped (no job held)"
    resuming = dict(kept, state=st.RESUMING)
    assert st.summary(resuming) == "resuming job 1f3c0000… at 17% (1700/9950 cells)"


def test_idle_names_the_next_poll_and_the_last_result():
    line = st.summary(snap(message="idle: no pending jobs", next_poll=1700000000,
                           last_result="job 1f3c0000… done, accuracy 93.3% (uploaded)"))
    assert re.match(r"idle: no pending jobs, next poll \d\d:\d\d:\d\d; last: job 1f3c0000… done, "
                    r"accuracy 93\.3% \(uploaded\)$", line), line


def test_a_refused_reload_is_shown_instead_of_the_old_no_token_line():
    s = snap(state=st.NO_TOKEN, message="no token: put the token into /etc/abrunnerd/token …",
             config_error="/etc/abrunnerd/token is readable by others: chmod 0640 /etc/abrunnerd/token")
    line = st.summary(s)
    assert line.startswith("configuration refused on reload (still without a token): /etc/abrunnerd/token "
                           "is readable by others")
    assert "no token:" not in line
    # during a job the job's line stays (abrunnerctl status prints the refusal under it)
    assert st.summary(dict(s, state=st.TRAINING, job_id=JOB)).startswith("training job")


def test_journal_progress_line_has_percent_and_eta_first_and_fits_80_columns():
    s = snap(state="training", job_id=JOB, fraction=18262 / 19950, cells_done=18262, cells_total=19950,
             eta_seconds=5000)
    line = st.journal_progress(s)
    assert line == "92% ETA 83 min (18262/19950) 1f3c0000"
    prefix = "Dec 02 06:46:35 sandbox abrunnerd[12345]: "  # what systemctl status puts in front
    assert len(prefix + line) <= 80


def test_resumed_tracker_starts_at_the_saved_position_and_never_goes_back():
    clock = Clock()
    t = st.ProgressTracker.from_saved({"cells_done": 1700, "cells_total": 9950, "seconds_per_cell": 0.5,
                                       "weight_seconds": 120.0}, clock=clock)
    assert t.fields()["cells_done"] == 1700 and t.fields()["eta_seconds"] == round(0.5 * 8250)
    t.restart()
    clock.t += 10
    t.observe(0, 0)  # the new process is still loading
    t.observe(1690, 9950)  # its checkpoint lost the cells in flight
    assert t.done == 1700
    t.observe(1800, 9950)
    assert t.done == 1800
    again = st.ProgressTracker.from_saved(t.saved())
    assert again.done == 1800 and abs(again.spc - t.spc) < 1e-9


def test_eta_ignores_paused_time_and_the_load_time_after_a_restart():
    clock = Clock()
    t = st.ProgressTracker(clock=clock)
    t.restart()
    clock.t += 30  # loading the dataset: not a cell's time
    t.observe(0, 0)
    t.observe(0, 1000)  # the grid is known: training starts
    for _ in range(100):
        clock.t += 1.0
        t.observe(t.done + 1, 1000)
    assert abs(t.spc - 1.0) < 1e-6 and t.eta_seconds() == 900
    t.pause()
    clock.t += 600  # ten minutes paused
    t.resume()
    clock.t += 1.0
    t.observe(101, 1000)  # the first cell after resuming only sets the mark
    clock.t += 1.0
    t.observe(102, 1000)
    assert abs(t.spc - 1.0) < 1e-6, "paused time leaked into the rate"
    assert t.eta_seconds() == 898


def test_eta_is_steady_through_bursty_cells():
    """A fold's kernel matrix takes long, then its cells finish in a burst: the ETA must not
    swing with each burst (the walk-through saw 11 min -> 84 s -> 2 min)."""
    clock = Clock()
    t = st.ProgressTracker(clock=clock)
    t.restart()
    t.observe(0, 2000)
    etas = []
    for unit in range(20):  # 20 units of 100 cells: 9.9 s of kernel work, then 100 cells in 0.1 s
        clock.t += 9.9
        t.observe(t.done, 2000)
        for _ in range(10):
            clock.t += 0.01
            t.observe(t.done + 10, 2000)
        if unit >= 2:
            etas.append(t.eta_seconds())
    truth = [10 * (2000 - 100 * (u + 1)) / 100.0 for u in range(2, 20)]
    for eta, want in zip(etas, truth):
        assert abs(eta - want) <= 0.15 * want + 12, (eta, want)


@settings(max_examples=200, deadline=None)
@given(hs.lists(hs.tuples(hs.integers(-5, 20000), hs.integers(-5, 20000), hs.sampled_from(
    ["observe", "pause", "resume", "restart"]), hs.floats(0, 100)), max_size=60))
def test_progress_never_decreases_whatever_the_worker_reports(events):
    clock = Clock()
    t = st.ProgressTracker(clock=clock)
    last_total, last_done = 0, 0
    for done, total, what, dt in events:
        clock.t += dt
        if what == "observe":
            t.observe(done, total)
        else:
            getattr(t, what)()
        f = t.fields()
        assert 0.0 <= f["fraction"] <= 1.0 and f["eta_seconds"] >= -1
        if t.total == last_total:
            assert t.done >= last_done
        last_total, last_done = t.total, t.done


def test_ping_interval_rule_the_server_is_an_upper_bound():
    assert st.effective_ping_interval(30, 60) == 30.0  # config lower: used
    assert st.effective_ping_interval(30, 10) == 10.0  # server lower: server
    assert st.effective_ping_interval(30, None) == 30.0
    assert st.effective_ping_interval(30, 0) == 30.0
    assert st.effective_ping_interval(30, float("nan")) == 30.0
    assert st.effective_ping_interval(30, 0.01) == 1.0


def test_example_server_url_is_recognised():
    assert st.is_example_url("https://jobs.example.org")
    assert not st.is_example_url("https://jobs.acousticbrainz.org/api/v1")


def test_docs_status_table_lists_every_state():
    with open(os.path.join(ROOT, "docs", "status.md")) as f:
        text = f.read()
    rows = set(re.findall(r"^\| `([a-z-]+)` \|", text, re.M))
    assert rows == set(st.STATES), (rows ^ set(st.STATES))


def test_training_processes_are_named():
    """setproctitle when installed (the command line), else PR_SET_NAME (the 15-byte comm)."""
    import subprocess
    import sys
    code = ("import os;from abrunnerd.proctitle import name_training_process as n;"
            "n('1f3c0000-aaaa', 10);print(open('/proc/self/comm').read().strip());"
            "print(open('/proc/self/cmdline','rb').read().replace(b'\\0',b' ').decode().strip());"
            "print(os.environ['ABRUNNERD_PROC_TITLE'])")
    out = subprocess.run([sys.executable, "-c", code], stdout=subprocess.PIPE, universal_newlines=True,
                         env=dict(os.environ, PYTHONPATH=ROOT), timeout=60, check=True).stdout.splitlines()
    comm, cmdline, inherited = out
    assert comm == "abrunnerd-train" or cmdline == "abrunnerd: training job 1f3c0000 (nice 10)", out
    assert inherited == "1f3c0000"  # the pool processes' titles name the job


JSON = hs.recursive(hs.none() | hs.booleans() | hs.integers(-2 ** 70, 2 ** 70) | hs.floats() | hs.text(max_size=20),
                    lambda inner: hs.lists(inner, max_size=4) | hs.dictionaries(hs.text(max_size=20), inner,
                                                                               max_size=6), max_leaves=20)


@settings(max_examples=300, deadline=None)
@given(hs.one_of(JSON, hs.fixed_dictionaries({}, optional={
    "cells_done": JSON, "cells_total": JSON, "seconds_per_cell": JSON, "weight_seconds": JSON})))
def test_a_hostile_shown_file_never_breaks_the_tracker(saved):
    """shown.json is a local file (hostile input): any JSON gives a sane tracker."""
    t = st.ProgressTracker.from_saved(saved)
    f = t.fields()
    assert 0 <= f["cells_done"] and 0 <= f["cells_total"] and 0.0 <= f["fraction"] <= 1.0
    assert isinstance(f["eta_seconds"], int) and f["eta_seconds"] >= -1
    st.summary(dict(f, state="training", job_id="x" * 36))
