"""The numpy libsvm predictor equals scikit-learn's libsvm on the same model."""
import numpy as np
import pytest
from sklearn.svm import SVC

from abrunnerd.trainer.libsvm_predict import (decision_values, parse_model_text, probabilities,
                                              svm_model_from_sklearn)


@pytest.mark.parametrize("kernel, k", [("rbf", 2), ("rbf", 3), ("poly", 3), ("poly", 4)])
def test_probabilities_match_sklearn(kernel, k):
    rng = np.random.RandomState(k)
    x = rng.rand(80, 5)
    y = np.arange(80) % k
    x[:, 0] += y * 0.3
    svc = SVC(kernel=kernel, C=4.0, gamma=0.5, degree=3, coef0=0.0, probability=True, random_state=0).fit(x, y)
    model = svm_model_from_sklearn(svc, "rbf" if kernel == "rbf" else "polynomial", 0.5)
    test = rng.rand(20, 5)
    assert np.allclose(probabilities(model, test), svc.predict_proba(test), atol=1e-9)
    if k > 2:
        svc.decision_function_shape = "ovo"
        ovo = svc.decision_function(test)
    else:  # scikit-learn flips the sign of the public binary decision function (libsvm's is -that)
        ovo = -svc.decision_function(test)[:, None]
    assert np.allclose(decision_values(model, test), ovo, atol=1e-9)


def test_parse_model_text_round_trip():
    lt = pytest.importorskip("abrunnerd.gaia.libsvm_text", reason="history helper's libsvm writer absent")
    rng = np.random.RandomState(1)
    x = rng.rand(40, 3)
    y = np.arange(40) % 3
    svc = SVC(kernel="rbf", C=2.0, gamma=0.25, probability=True, random_state=0).fit(x, y)
    model = svm_model_from_sklearn(svc, "rbf", 0.25)
    again = parse_model_text(lt.render_model(model))
    assert np.allclose(probabilities(again, x), probabilities(model, x), atol=1e-12)
