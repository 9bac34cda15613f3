"""libsvm model text: what the writer renders, and reading Gaia's model back."""
import numpy as np
import pytest

from abrunnerd.gaia.chain import SvmModel
from abrunnerd.gaia.history import loads_history
from abrunnerd.gaia.libsvm_text import parse_model, parse_model_header, render_model


def three_class_model(prob: bool = True) -> SvmModel:
    rng = np.random.RandomState(0)
    return SvmModel(kernel="polynomial", gamma=0.125, degree=3, coef0=0.0, labels=[0, 1, 2], n_support=[2, 1, 2],
                    support_vectors=rng.rand(5, 4), dual_coef=rng.randn(2, 5), rho=np.array([0.1, -0.2, 1 / 3]),
                    prob_a=np.array([-1.5, -2.0, -0.5]) if prob else None,
                    prob_b=np.array([0.01, 0.0, -0.02]) if prob else None)


def test_rendered_text_has_libsvm_289_keywords_in_order():
    text = render_model(three_class_model()).decode()
    keywords = [line.split()[0] for line in text.split("\n")[:12]]
    assert keywords == ["svm_type", "kernel_type", "degree", "gamma", "coef0", "nr_class", "total_sv", "rho",
                        "label", "probA", "probB", "nr_sv"]
    assert text.split("\n")[12] == "SV" and text.endswith("\n") and "\0" not in text
    assert "rho 0.10000000000000001 -0.20000000000000001 0.33333333333333331" in text
    assert "probA" not in render_model(three_class_model(prob=False)).decode()


def test_render_parse_round_trip_is_exact():
    model = three_class_model()
    back = parse_model(render_model(model))
    assert render_model(back) == render_model(model)
    assert np.array_equal(back.support_vectors, model.support_vectors)
    assert np.array_equal(back.dual_coef, model.dual_coef)


def test_inconsistent_models_are_refused():
    model = three_class_model()._replace(n_support=[2, 2, 2])
    with pytest.raises(ValueError, match="disagree"):
        render_model(model)
    model = three_class_model()._replace(rho=np.array([0.0]))
    with pytest.raises(ValueError, match="do not fit 3 classes"):
        render_model(model)
    model = three_class_model()
    model.support_vectors[0, 0] = np.nan
    with pytest.raises(ValueError, match="not finite"):
        render_model(model)
    with pytest.raises(ValueError, match="kernel 'sigmoidal'"):
        render_model(SvmModel("sigmoidal", 1.0, 3, 0.0, [0, 1], [1, 1], np.zeros((2, 1)), np.zeros((1, 2)),
                              np.zeros(1)))


def test_gaias_model_text_parses(reference_bytes):
    svm = next(s for s in loads_history(reference_bytes) if s.applier == "svmpredict")
    text = svm.params["modelData"]
    header = parse_model_header(text)
    model = parse_model(text)
    assert model.kernel == "rbf" and model.gamma == pytest.approx(2.0 ** -11, rel=1e-5)
    assert model.n_support == [28, 19, 27] and model.support_vectors.shape == (74, 672)
    assert sorted(model.labels) == [0, 1, 2] and len(header["probA"]) == 3
    with pytest.raises(ValueError, match="malformed libsvm model text|total_sv"):
        parse_model(text[: len(text) // 2])
