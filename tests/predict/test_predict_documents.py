"""abrunnerd.documents: every input form, bounded reads, one clear error per bad document."""
import io
import json
import os

import pytest
import yaml

from abrunnerd import documents
from abrunnerd.documents import DocumentError, Source, expand_inputs, iter_json_lines, load_source, parse_document


def test_directories_are_walked_sorted_with_document_suffixes_only(tmp_path):
    for name in ["b.json", "a.YAML", "sub/c.yml", "sub/z.txt", "d.json.bak"]:
        path = tmp_path / name
        path.parent.mkdir(exist_ok=True)
        path.write_text("{}")
    sources = list(expand_inputs([str(tmp_path)]))
    assert [s.relative for s in sources] == ["a.YAML", "b.json", os.path.join("sub", "c.yml")]
    assert all(load_source(s) == {} for s in sources)


def test_essentia_yaml_reads_like_its_json():
    doc = {"lowlevel": {"mfcc": {"mean": [1.5, -2.25e-7, 3.0]}, "cov": [[1.0, 0.5], [0.5, 1.0]]},
           "tonal": {"key_key": "C#", "chords_histogram": [0.0] * 3}, "metadata": {"version": {"essentia": "2.1"}}}
    text = yaml.safe_dump(doc, default_flow_style=False)  # block style, as essentia_streaming_extractor_music
    assert parse_document(text.encode(), "yaml") == doc == parse_document(json.dumps(doc).encode(), "json")


def test_json_lines_numbering_blank_lines_and_overlong_lines(monkeypatch):
    stream = io.BytesIO(b'{"a": 1}\n\n' + b'{"b": "' + b"x" * 100 + b'"}\n{"c": 3}')
    lines = list(iter_json_lines(stream, limit=50))
    assert [n for n, _ in lines] == [1, 3, 4]
    monkeypatch.setattr(documents, "MAX_DOCUMENT_BYTES", 50)
    with pytest.raises(DocumentError, match="longer than 50 bytes"):
        load_source(Source("-:3", None, "", 3, lines[1][1]))
    assert load_source(Source("-:4", None, "", 4, lines[2][1])) == {"c": 3}


@pytest.mark.parametrize("data, fmt, message", [
    (b"[1, 2]", "json", "top level is list"),
    (b"", "yaml", "top level is empty"),
    (b"\xff", "json", "not UTF-8"),
    (b'{"a": [' * 5000, "json", "nested too deeply"),
    (b"{'a': 1}", "json", "not valid JSON"),
    (b"a: [1\n", "yaml", "not valid YAML"),
    (b"!!python/object:os.system {}\n", "yaml", "not valid YAML"),  # safe loading only
    (b"1: 2\n", "yaml", "key 1 is not a string"),
    ("a:\n" + "".join("  " * i + " - \n" for i in range(1, 80)), "yaml", "nested deeper than 64"),
])
def test_malformed_documents(data, fmt, message):
    with pytest.raises(DocumentError, match=message):
        parse_document(data.encode() if isinstance(data, str) else data, fmt)


def test_size_limit_and_non_regular_files(tmp_path, monkeypatch):
    monkeypatch.setattr(documents, "MAX_DOCUMENT_BYTES", 10)
    big = tmp_path / "big.json"
    big.write_text('{"a": "0123456789"}')
    with pytest.raises(DocumentError, match="19 bytes, more than the 10 allowed"):
        documents.read_file(str(big), limit=10)
    fifo = tmp_path / "fifo.json"
    os.mkfifo(str(fifo))
    with pytest.raises(DocumentError, match="not a regular file"):  # refused without opening (would block)
        documents.read_file(str(fifo))
    with pytest.raises(DocumentError, match="No such file"):
        documents.read_file(str(tmp_path / "absent.json"))


def test_numbers_as_essentias_yaml_writes_them():
    # Essentia's YamlOutput prints reals with C++ streams: 1e-05 (no dot), nan, inf, -inf, quoted strings
    text = b'lowlevel:\n    a: 1e-05\n    b: [1e-05, 2.5e+10, -3, nan, inf, -inf]\n    c: "1e-05"\n'
    doc = parse_document(text, "yaml")
    assert doc["lowlevel"]["a"] == 1e-05 and doc["lowlevel"]["c"] == "1e-05"
    b = doc["lowlevel"]["b"]
    assert b[:3] == [1e-05, 2.5e10, -3] and b[3] != b[3] and b[4] == float("inf") and b[5] == -float("inf")
