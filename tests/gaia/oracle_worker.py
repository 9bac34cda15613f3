"""Apply a Gaia history with Essentia's GaiaTransform: the test oracle for our writer.

Runs inside the Python 3.9 venv built by ``tools/essentia-oracle-venv`` (essentia
2.1b6.dev374, the only PyPI build whose Gaia applies real chains), so it imports
nothing from abrunnerd.  Usage:

    oracle_worker.py --self-test
    oracle_worker.py HISTORY [HISTORY ...] -- DOC.json [DOC.json ...]
        prints {history: {doc path: {pool key: value}}}

Every (history, document) pair gets a fresh GaiaTransform (appliers keep state between
computes, gaia-transform-output.md §5); each document is loaded once and applied to
every history.  A pair that fails gets ``{"error": message}``.
"""
import json
import os
import sys
import tempfile

# The 276-byte history of gaia-transform-output.md §6: remove `b` from {a, b} (Real VL).
SELF_TEST_HEX = (
    "6aea723d0000006600000001000000000000000c00720065006d006f007600650000001400720065006d006f00760065"
    "00640065007300630000000800000000010000001e00640065007300630072006900700074006f0072004e0061006d00"
    "6500730000000b00000000010000000200620000000800000000010000001e0064006500730063007200690070007400"
    "6f0072004e0061006d006500730000000b000000000100000004002e00620000000800000000000000000c0000000054"
    "000000000000000000000001ffffffffffffffff00000002000000020061000000010000000100000000000000010000"
    "000000000002006200000001000000010000000100000002000000000000000000000000"
)


def quiet_essentia():
    import essentia

    for flag in ("infoActive", "warningActive"):
        setattr(essentia.log, flag, False)
    return essentia


def load_pool(doc_path):
    import essentia.standard as es

    return es.YamlInput(filename=doc_path, format="json")()


def apply(history, pool):
    import essentia.standard as es

    out = es.GaiaTransform(history=history)(pool)
    result = {}
    for key in out.descriptorNames():
        value = out[key]
        if isinstance(value, (str, float, int)):
            result[key] = value
        else:
            try:
                result[key] = [float(v) for v in value]
            except (TypeError, ValueError):
                result[key] = [str(v) for v in value]
    return result


def self_test():
    data = bytes.fromhex(SELF_TEST_HEX)
    if len(data) != 276:
        print("self-test vector has %d bytes, expected 276" % len(data), file=sys.stderr)
        return 1
    essentia = quiet_essentia()
    import essentia.standard as es

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "selftest.history")
        with open(path, "wb") as f:
            f.write(data)
        pool = essentia.Pool()
        pool.set("a", 1.0)
        pool.set("b", 2.0)
        try:
            out = es.GaiaTransform(history=path)(pool)
        except Exception as exc:  # a broken Gaia build raises here
            print("self-test: GaiaTransform failed: %s" % exc, file=sys.stderr)
            return 1
        names = sorted(out.descriptorNames())
        if names != ["a"]:
            print("self-test: expected output ['a'], got %s" % names, file=sys.stderr)
            return 1
    print("essentia %s: GaiaTransform self-test ok" % essentia.__version__, file=sys.stderr)
    return 0


def main(argv):
    if argv[1:] == ["--self-test"]:
        return self_test()
    if "--" not in argv[2:]:
        print(__doc__, file=sys.stderr)
        return 2
    split = argv.index("--", 2)
    histories, docs = argv[1:split], argv[split + 1:]
    quiet_essentia()
    results = {h: {} for h in histories}
    for doc in docs:
        try:
            pool = load_pool(doc)
        except Exception as exc:
            for h in histories:
                results[h][doc] = {"error": "cannot load %s: %s" % (doc, exc)}
            continue
        for h in histories:
            try:
                results[h][doc] = apply(h, pool)
            except Exception as exc:
                results[h][doc] = {"error": str(exc)}
    json.dump(results, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
