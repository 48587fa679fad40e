"""fnn.metrics against NumPy loops and scikit-learn."""
import jax.numpy as jnp
import numpy as np
import pytest
from sklearn.metrics import confusion_matrix as sk_confusion
from sklearn.metrics import precision_recall_fscore_support

from fnn.metrics import accuracy, confusion_matrix, error_rate, get_metric, precision_recall_f1, top_k_accuracy

RNG = np.random.default_rng(0)
SCORES = RNG.normal(size=(200, 5)).astype(np.float32)
LABELS = RNG.integers(0, 5, 200).astype(np.int32)


def test_accuracy_and_error_rate_match_numpy_with_labels_and_one_hot():
    want = np.mean(SCORES.argmax(1) == LABELS)
    assert float(accuracy(SCORES, LABELS)) == pytest.approx(want)
    assert float(accuracy(SCORES, np.eye(5, dtype=np.float32)[LABELS])) == pytest.approx(want)
    assert float(error_rate(SCORES, LABELS)) == pytest.approx(1 - want)


@pytest.mark.parametrize("k", [1, 2, 3, 5])
def test_top_k_accuracy_matches_a_numpy_loop(k):
    hits = [LABELS[i] in np.argsort(-SCORES[i])[:k] for i in range(200)]
    assert float(top_k_accuracy(SCORES, LABELS, k)) == pytest.approx(np.mean(hits))


def test_confusion_matrix_and_precision_recall_f1_match_sklearn():
    pred = SCORES.argmax(1)
    m = np.asarray(confusion_matrix(SCORES, LABELS))
    np.testing.assert_array_equal(m, sk_confusion(LABELS, pred, labels=range(5)))
    np.testing.assert_array_equal(confusion_matrix(jnp.asarray(pred), LABELS, num_classes=5), m)
    p, r, f = precision_recall_f1(m)
    sp, sr, sf, _ = precision_recall_fscore_support(LABELS, pred, labels=range(5), zero_division=0)
    np.testing.assert_allclose(p, sp, rtol=1e-6)
    np.testing.assert_allclose(r, sr, rtol=1e-6)
    np.testing.assert_allclose(f, sf, rtol=1e-6)
    p, r, f = precision_recall_f1(np.array([[2, 0], [1, 0]]))   # class 1 never predicted: precision 0, not NaN
    np.testing.assert_allclose(p, [2 / 3, 0.0])
    np.testing.assert_allclose(f, [0.8, 0.0])


def test_metric_errors_and_lookup():
    with pytest.raises(ValueError, match=r"expected integer labels of shape \(200,\)"):
        accuracy(SCORES, LABELS[:10])
    with pytest.raises(ValueError, match="k >= 1"):
        top_k_accuracy(SCORES, LABELS, 0)
    with pytest.raises(ValueError, match="unknown metric 'acc'; valid names: accuracy"):
        get_metric("acc")
    assert get_metric("accuracy") == ("accuracy", accuracy)


def test_argument_messages_come_from_fnn_checks():
    with pytest.raises(ValueError, match=r"^top_k_accuracy: k must be a positive integer \(k >= 1\), got k=2.5; "):
        top_k_accuracy(jnp.zeros((2, 3)), jnp.zeros(2, jnp.int32), k=2.5)
    with pytest.raises(ValueError, match=r"^confusion_matrix: num_classes must be a positive integer .*got "
                                         r"num_classes=0"):
        confusion_matrix(jnp.zeros(3, jnp.int32), jnp.zeros(3, jnp.int32), num_classes=0)


def test_top_k_names_resolve_and_fit_records_them():
    """docs/training.md names top_k_accuracy: the name used to be rejected; now it and top_<k>_accuracy resolve."""
    for k in (1, 3, 5):
        name, fn = get_metric(f"top_{k}_accuracy")
        assert name == f"top_{k}_accuracy"
        np.testing.assert_allclose(fn(SCORES, LABELS), top_k_accuracy(SCORES, LABELS, k))
    assert get_metric("top_k_accuracy")[1](SCORES, LABELS) == top_k_accuracy(SCORES, LABELS, 5)
    for bad in ("top_0_accuracy", "top_x_accuracy", "top_3_acc"):
        with pytest.raises(ValueError, match=r"top_<k>_accuracy for any k >= 1 \(e\.g\. top_3_accuracy\)"):
            get_metric(bad)
    import jax

    from fnn import layers, losses, optimizers, train
    model = layers.serial(layers.Dense(4))
    X, y = jax.random.normal(jax.random.key(0), (16, 3)), jnp.arange(16) % 4
    ce = losses.softmax_cross_entropy_with_integer_labels
    h = train.fit(model.apply, model.init(jax.random.key(1), (-1, 3))[1], optimizers.sgd(0.1), ce,
                  X, y, epochs=1, batch_size=16, key=jax.random.key(2), metrics=("top_2_accuracy",),
                  verbose=False).history
    assert 0.0 <= h["top_2_accuracy"][0] <= 1.0
