"""The numpy libsvm predictor (abrunnerd.gaia.svm) equals libsvm (scikit-learn's copy) on the same model."""
import numpy as np
import pytest
from sklearn.svm import SVC

from abrunnerd.gaia.libsvm_text import render_model
from abrunnerd.gaia.svm import SvmModelError, couple, parse_svm_model
from abrunnerd.trainer.libsvm_predict import svm_model_from_sklearn


def _fit(kernel, k, seed):
    rng = np.random.RandomState(seed)
    x = rng.rand(80, 5)
    y = np.arange(80) % k
    x[:, 0] += y * 0.3
    svc = SVC(kernel=kernel, C=4.0, gamma=0.5, degree=3, coef0=0.0, probability=True, random_state=0).fit(x, y)
    model = svm_model_from_sklearn(svc, "rbf" if kernel == "rbf" else "polynomial", 0.5)
    return svc, parse_svm_model(render_model(model), 5), rng.rand(20, 5)


@pytest.mark.parametrize("kernel, k", [("rbf", 2), ("rbf", 3), ("poly", 3), ("poly", 4)])
def test_probabilities_decisions_and_votes_match_sklearn(kernel, k):
    svc, predictor, test = _fit(kernel, k, k)
    assert np.allclose(predictor.probabilities(test), svc.predict_proba(test), atol=1e-9)
    if k > 2:
        svc.decision_function_shape = "ovo"
        ovo = svc.decision_function(test)
    else:  # scikit-learn flips the sign of the public binary decision function (libsvm's is -that)
        ovo = -svc.decision_function(test)[:, None]
    assert np.allclose(predictor.decision_values(test), ovo, atol=1e-9)
    assert (np.array(predictor.labels)[predictor.vote(test)] == svc.predict(test)).all()


def test_batched_coupling_equals_row_by_row():
    rng = np.random.RandomState(3)
    pairwise = rng.uniform(1e-7, 1 - 1e-7, size=(50, 10))  # 5 classes
    batched = couple(pairwise, 5)
    single = np.vstack([couple(pairwise[i:i + 1], 5) for i in range(50)])
    assert np.array_equal(batched, single)
    assert np.allclose(batched.sum(axis=1), 1.0)


@pytest.mark.parametrize("text, message", [
    (b"svm_type one_class\nkernel_type rbf\nnr_class 2\ntotal_sv 1\nrho 0\nlabel 0 1\nnr_sv 1 0\nSV\n1 1:0\n",
     "cannot classify"),
    (b"svm_type c_svc\nkernel_type precomputed\nnr_class 2\ntotal_sv 1\nrho 0\nlabel 0 1\nnr_sv 1 0\nSV\n1 1:0\n",
     "kernel_type"),
    (b"svm_type c_svc\nkernel_type rbf\nnr_class 2\ntotal_sv 2\nrho 0\nlabel 0 1\nnr_sv 1 0\nSV\n1 1:0\n", "total_sv"),
    (b"svm_type c_svc\nkernel_type rbf\nnr_class 2\ntotal_sv 1\nrho 0 1\nlabel 0 1\nnr_sv 1 0\nSV\n1 1:0\n", "rho"),
    (b"svm_type c_svc\nkernel_type rbf\nnr_class 2\ntotal_sv 1\nrho nan\nlabel 0 1\nnr_sv 1 0\nSV\n1 1:0\n", "finite"),
    (b"svm_type c_svc\nkernel_type rbf\nnr_class 2\ntotal_sv 1\nrho 0\nlabel 0 1\nnr_sv 1 0\nSV\n1 2:0 1:1\n",
     "ascending"),
    (b"svm_type c_svc\nkernel_type rbf\nnr_class 99999999\ntotal_sv 1\nrho 0\nSV\n", "nr_class"),
    (b"svm_type c_svc\nbogus 1\nSV\n", "unknown keyword"),
    (b"svm_type c_svc\n", "no SV"),
    (b"\xff", "ASCII"),
])
def test_malformed_model_text_is_refused_with_the_reason(text, message):
    with pytest.raises(SvmModelError) as e:
        parse_svm_model(text, 1)
    assert message in str(e.value)


def test_sv_indices_beyond_the_features_count_in_rbf_like_libsvm():
    text = (b"svm_type c_svc\nkernel_type rbf\ngamma 0.5\nnr_class 2\ntotal_sv 2\nrho 0.1\nlabel 0 1\n"
            b"nr_sv 1 1\nSV\n1 1:1 3:2\n-1 2:1\n")
    predictor = parse_svm_model(text, 2)
    x = np.array([[0.5, 0.25]])
    k0 = np.exp(-0.5 * ((0.5 - 1) ** 2 + 0.25 ** 2 + 2 ** 2))  # libsvm adds the SV's extra 3:2 squared
    k1 = np.exp(-0.5 * (0.5 ** 2 + (0.25 - 1) ** 2))
    assert predictor.decision_values(x)[0, 0] == pytest.approx(k0 - k1 - 0.1, abs=1e-15)
