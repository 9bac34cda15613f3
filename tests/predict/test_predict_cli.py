"""``abrunnerctl predict`` as a user runs it: inputs of every kind, several models, outputs, exit codes."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from abrunnerd.gaia.history import write_history
from predict_vectors import DOC, toy_doc, toy_steps

REPO = Path(__file__).resolve().parents[2]


def run(*args, stdin=None, timeout=120):
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.run([sys.executable, "-m", "abrunnerd.ctl", "predict"] + [str(a) for a in args],
                          input=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, timeout=timeout)
    assert b"Traceback" not in proc.stderr, proc.stderr.decode()
    return proc.returncode, proc.stdout.decode(), proc.stderr.decode()


@pytest.fixture
def models(tmp_path):
    """Two models with different class names (so they can be applied together)."""
    first = tmp_path / "toy.history"
    write_history(toy_steps(), first)
    steps = toy_steps()
    for step in steps[6:]:
        for params in (step.params, step.analyzer_params):
            for key, value in list(params.items()):
                if isinstance(value, str):
                    params[key] = value.replace("highlevel.toy", "highlevel.other")
                elif isinstance(value, list) and key == "descriptorNames":
                    params[key] = type(value)(v.replace("highlevel.toy", "highlevel.other") for v in value)
    from abrunnerd.gaia.chain import Descriptor, Layout
    for i, step in enumerate(steps[7:], 7):
        steps[i] = step._replace(input_layout=Layout(
            [Descriptor(d.name.replace("highlevel.toy", "highlevel.other"), d.type, d.length_type, d.size)
             for d in step.input_layout.descriptors], step.input_layout.enum_maps))
    second = tmp_path / "other.history"
    write_history(steps, second)
    return first, second


@pytest.fixture
def inputs(tmp_path):
    d = tmp_path / "docs"
    (d / "sub").mkdir(parents=True)
    (d / "a.json").write_text(json.dumps(DOC))
    (d / "sub" / "b.yaml").write_text(yaml.safe_dump(toy_doc(tonal__key="D")))  # as Essentia writes YAML
    (d / "bad.json").write_text(json.dumps(toy_doc(lowlevel__x=None)))
    (d / "notes.txt").write_text("not a document")
    return d


def test_jsonl_on_stdout_for_files_directories_and_stdin(models, inputs):
    lines = (json.dumps(toy_doc(tonal__key="E")) + "\n\n" + "{broken\n").encode()
    rc, out, err = run(models[0], inputs, "-", stdin=lines)
    assert rc == 3  # some documents failed, the rest are written
    rows = [json.loads(line) for line in out.splitlines()]
    assert [r["input"] for r in rows] == [str(inputs / "a.json"), str(inputs / "bad.json"),
                                          str(inputs / "sub" / "b.yaml"), "-:1", "-:3"]
    good = [r for r in rows if "highlevel" in r]
    assert len(good) == 3
    for r in good:
        result = r["highlevel"]["toy"]
        assert set(result) == {"value", "probability", "all"} and set(result["all"]) == {"no", "yes"}
        assert result["probability"] == result["all"][result["value"]]
    assert "descriptor lowlevel.x is missing" in rows[1]["error"]
    assert "not valid JSON" in rows[4]["error"]
    assert err.count("\n") == 2 and "bad.json: model toy: descriptor lowlevel.x is missing" in err
    assert "-:3: not valid JSON" in err


def test_out_dir_one_file_per_input_and_several_models(models, inputs, tmp_path):
    out = tmp_path / "out"
    rc, stdout, err = run(models[0], "--model", models[1], inputs, "--out", out, "--jobs", "2", "--batch", "1")
    assert rc == 3 and stdout == ""
    written = sorted(str(p.relative_to(out)) for p in out.rglob("*.json"))
    assert written == ["a.json", "sub/b.json"]
    a = json.loads((out / "a.json").read_text())
    assert set(a) == {"highlevel"} and set(a["highlevel"]) == {"toy", "other"}
    assert a["highlevel"]["toy"] == a["highlevel"]["other"]  # same chain, another name
    same = run(models[0], inputs / "a.json")[1]
    assert json.loads(same)["highlevel"]["toy"] == a["highlevel"]["toy"]  # --jobs/--batch change nothing


def test_results_do_not_depend_on_jobs_or_batch(models, tmp_path):
    lines = "".join(json.dumps(toy_doc(lowlevel__x=[v / 7.0, 1.0, -v / 3.0])) + "\n" for v in range(30)).encode()
    one = run(models[0], "-", stdin=lines)[1]
    two = run(models[0], "-", "--jobs", "2", "--batch", "4", stdin=lines)[1]
    assert one == two and len(one.splitlines()) == 30


@pytest.mark.parametrize("args, code, message", [
    (["{missing}", "{doc}"], 66, "cannot read model"),
    (["{garbage}", "{doc}"], 65, "not a Gaia history"),
    (["{doc}", "{doc}"], 65, "not a Gaia history"),
    (["{model}", "--model", "{model}", "{doc}"], 65, "both write highlevel.toy"),
    (["{model}", "{doc}", "--jobs", "0"], 64, "--jobs must be"),
    (["{model}", "-", "-"], 64, "can be given once"),
    (["{model}", "{missing}"], 3, "cannot read: No such file or directory"),
    (["{model}", "{fifo}"], 3, "not a regular file"),
])
def test_exit_codes_distinguish_bad_models_from_bad_documents(models, tmp_path, args, code, message):
    garbage = tmp_path / "garbage.history"
    garbage.write_bytes(b"\x00" * 40)
    doc = tmp_path / "doc.json"
    doc.write_text(json.dumps(DOC))
    fifo = tmp_path / "fifo.json"
    os.mkfifo(str(fifo))
    values = {"missing": tmp_path / "nope", "garbage": garbage, "doc": doc, "model": models[0], "fifo": fifo}
    rc, out, err = run(*[a.format(**values) for a in args], stdin=b"")
    assert rc == code, err
    assert message in err and err.startswith("abrunnerctl predict: ")


def test_unsupported_applier_names_applier_step_and_file(tmp_path):
    steps = toy_steps()
    steps[4] = steps[4]._replace(applier="matmult")
    path = tmp_path / "pca.history"
    write_history(steps, path)
    rc, out, err = run(path, tmp_path)
    assert rc == 65
    assert err.strip() == ("abrunnerctl predict: %s: transformation 4 (matmult): applier 'matmult' is not supported by "
                           "abrunnerd's predictor (PCA/RCA projections); supported: removedesc, selectdesc, "
                           "fixlengthapplier, enumerateapplier, dotproduct, distribute, addfieldapplier, "
                           "renameapplier, svmpredict" % path)


def test_help_lists_exit_codes():
    rc, out, err = run("--help")
    assert rc == 0 and "65  a model is invalid or cannot be applied" in out and "JSON Lines" in out


def test_progress_line_only_on_a_terminal(models, tmp_path):
    import pty

    doc = tmp_path / "doc.json"
    doc.write_text(json.dumps(DOC))
    master, slave = pty.openpty()
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.run([sys.executable, "-m", "abrunnerd.ctl", "predict", str(models[0]), str(doc)],
                          stdout=subprocess.PIPE, stderr=slave, env=env, timeout=120)
    os.close(slave)
    tty = os.read(master, 4096).decode()
    os.close(master)
    assert proc.returncode == 0
    assert "abrunnerctl predict: 1 documents, 0 failed" in tty
    assert run(models[0], doc)[2] == ""  # no progress when stderr is not a terminal


def test_two_inputs_with_one_output_name_do_not_overwrite_each_other(models, tmp_path):
    for sub in ("x", "y"):
        (tmp_path / sub).mkdir()
        (tmp_path / sub / "same.json").write_text(json.dumps(toy_doc(tonal__key="D" if sub == "y" else "C")))
    out = tmp_path / "out"
    rc, _, err = run(models[0], tmp_path / "x" / "same.json", tmp_path / "y" / "same.json", "--out", out)
    assert rc == 3 and "another input of this run already wrote %s" % (out / "same.json") in err
    first = (out / "same.json").read_text()
    os.utime(str(out / "same.json"), (1, 1))  # from an earlier run: a new run overwrites it
    rc, _, err = run(models[0], tmp_path / "y" / "same.json", "--out", out)
    assert rc == 0 and (out / "same.json").read_text() != first


def test_an_input_without_documents_is_said(models, tmp_path):
    (tmp_path / "empty").mkdir()
    rc, out, err = run(models[0], tmp_path / "empty")
    assert rc == 0 and out == "" and "no documents found in %s" % (tmp_path / "empty") in err


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_sigterm_while_waiting_for_stdin_ends_with_143_and_one_line(models, jobs):
    import signal
    import time

    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.Popen([sys.executable, "-m", "abrunnerd.ctl", "predict", str(models[0]), "-", "--jobs", jobs,
                             "--batch", "1"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=env)
    try:
        proc.stdin.write((json.dumps(DOC) + "\n").encode())
        proc.stdin.flush()
        if jobs == "1":  # one document predicted and printed: the run is under way, now blocked on stdin
            first = proc.stdout.readline()
            assert json.loads(first.decode())["highlevel"]["toy"]["value"] in ("yes", "no")
        else:  # workers started, the parent blocked on stdin (its result may wait for the next line)
            time.sleep(3)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 143, err
    assert err.decode().strip() == "abrunnerctl predict: interrupted; the documents listed so far are written"
