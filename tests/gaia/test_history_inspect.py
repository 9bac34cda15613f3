"""``abrunnerctl inspect-history``: readable chain, JSON for tools, clear errors."""
import json

from abrunnerd.ctl import main
from abrunnerd.gaia.history import write_history
from gaia_vectors import remove_b_step


def test_text_output_of_gaias_reference(reference_history, capsys):
    assert main(["inspect-history", str(reference_history)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("Gaia history: 12 transformations\n")
    assert " 0. remove -> removedesc   (input: 524 descriptors, 0 fixed dimensions, 524 variable-length)" in out
    assert "10. svmtrain -> svmpredict" in out
    assert ("SVM: rbf kernel, c 2048, gamma 0.000488281; 3 classes ['electronic', 'orchestral', 'speech']; "
            "74 support vectors [28, 19, 27]; 163 feature descriptors (672 dimensions); probability True") in out
    assert "descriptorNames: ['.highlevel.ab-real-1', '.highlevel.ab-real-1Probability']" in out


def test_json_output_of_gaias_reference(reference_history, capsys):
    assert main(["inspect-history", "--json", str(reference_history)]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["count"] == 12
    assert summary["svm"]["kernel"] == "rbf" and summary["svm"]["support_vectors"] == 74
    assert summary["svm"]["feature_dimensions"] == 672
    assert summary["svm"]["classes"] == ["electronic", "orchestral", "speech"]
    first = summary["transformations"][0]["input_layout"]
    assert first == {"descriptors": 524, "fixed_dimensions": 0, "variable_length": 524,
                     "by_type": {"real_vl": 513, "string_vl": 11}, "enum_maps": {}}
    assert summary["transformations"][4]["input_layout"]["enum_maps"][".tonal.key_key"] == 12
    assert summary["transformations"][5]["params"]["distribution"]["entries"] == 486


def test_small_history_and_errors(tmp_path, capsys):
    path = tmp_path / "small.history"
    write_history([remove_b_step()], path)
    assert main(["inspect-history", str(path)]) == 0
    assert "descriptorNames: ['.b']" in capsys.readouterr().out
    bad = tmp_path / "bad.history"
    bad.write_bytes(path.read_bytes()[:-3])
    assert main(["inspect-history", str(bad)]) == 65
    err = capsys.readouterr().err
    assert "bad.history: malformed Gaia history" in err and "truncated" in err
    assert main(["inspect-history", str(tmp_path / "missing.history")]) == 66
    assert "cannot read" in capsys.readouterr().err
