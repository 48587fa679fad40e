"""examples/nielsen_network.py: Nielsen's ch. 1 network trained with fnn equals his ``network.py`` algorithm.

* One mini-batch step of the example's setup (``network`` + ``train``: ``fit`` with ``sgd(3.0)`` on
  ``quadratic_cost``) equals Nielsen's ``update_mini_batch`` written out in NumPy below: per-example backprop with
  column vectors, gradients summed over the mini-batch, ``w <- w - eta/m sum nabla_w``.
* The initialization is N(0, 1) for weights and biases (not the 1/sqrt(n_in) of the later chapters).
* ``--quick`` on tiny MNIST IDX files written here: the files are read, split 5/6 train : 1/6 held out, and the
  accuracies in the printed table are those of a NumPy forward pass over the same images.
"""
import gzip
import importlib.util
import pathlib
import struct

import jax
import numpy as np
import pytest

from fnn import data
from fnn.layers.dense import DenseParams

_PATH = pathlib.Path(__file__).resolve().parents[1] / "examples" / "nielsen_network.py"
_spec = importlib.util.spec_from_file_location("nielsen_network", _PATH)
nn = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(nn)


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def nielsen_update_mini_batch(weights, biases, batch, eta):
    """Nielsen's ``update_mini_batch`` + ``backprop`` in NumPy (float64): w[l] of shape (d_l, d_{l-1}), b[l] of
    shape (d_l, 1), x and y column vectors, C_x = ||y - a||^2 / 2 so dC_x/da = a - y (ch. 1-2)."""
    nabla_w = [np.zeros_like(w) for w in weights]
    nabla_b = [np.zeros_like(b) for b in biases]
    for x, y in batch:
        a, activations, zs = x, [x], []
        for w, b in zip(weights, biases):                       # feedforward, keeping every z and a
            z = w @ a + b
            a = sigmoid(z)
            zs.append(z)
            activations.append(a)
        delta = (activations[-1] - y) * sigmoid(zs[-1]) * (1 - sigmoid(zs[-1]))     # BP1
        for l in range(len(weights) - 1, -1, -1):
            nabla_b[l] += delta                                                       # BP3
            nabla_w[l] += delta @ activations[l].T                                    # BP4
            if l:
                delta = (weights[l].T @ delta) * sigmoid(zs[l - 1]) * (1 - sigmoid(zs[l - 1]))   # BP2
    m = len(batch)
    return ([w - eta / m * nw for w, nw in zip(weights, nabla_w)],
            [b - eta / m * nb for b, nb in zip(biases, nabla_b)])


def _dense(params):
    """fnn's (W (d_in, d_out), b (d_out,)) per Dense layer -> Nielsen's (w = W^T, b as a column), float64."""
    layers = [p for p in params if isinstance(p, DenseParams)]
    return ([np.asarray(p.W, np.float64).T for p in layers], [np.asarray(p.b, np.float64)[:, None] for p in layers])


def test_one_fit_step_equals_nielsens_update_mini_batch():
    rng = np.random.default_rng(0)
    m = 10
    # MNIST-like inputs: most pixels 0, the rest in (0, 1]; one-hot targets
    X = (rng.random((m, 784)) * (rng.random((m, 784)) < 0.1)).astype(np.float32)
    labels = rng.integers(0, 10, m)
    Y = data.one_hot(labels, 10)
    net = nn.network(30)
    _, params = net.init(jax.random.key(3), (-1, 784))
    # one epoch over m examples with batch m is exactly one mini-batch step (the sum is order-free)
    res = nn.train(net.apply, params, X, Y, epochs=1, key=jax.random.key(4), batch_size=m)
    w0, b0 = _dense(params)
    batch = [(x[:, None], y[:, None]) for x, y in zip(X, Y)]
    w_ref, b_ref = nielsen_update_mini_batch(w0, b0, batch, nn.ETA)
    w_fnn, b_fnn = _dense(res.params)
    for new, ref, old in zip(w_fnn + b_fnn, w_ref + b_ref, w0 + b0):
        step_ref = ref - old
        assert np.abs(step_ref).max() > 1e-2                    # a real step, not a saturated no-op
        np.testing.assert_allclose(new - old, step_ref, rtol=0, atol=1e-4 * np.abs(step_ref).max() + 1e-6)
    # the test can fail: Nielsen's eta/m scaling, not eta alone (a cost summed over the batch), is what fit took
    w_sum, _ = nielsen_update_mini_batch(w0, b0, batch, nn.ETA * m)
    assert not np.allclose(w_fnn[-1], w_sum[-1], atol=1e-3)


def test_initialization_is_standard_normal_for_weights_and_biases():
    _, params = nn.network(30).init(jax.random.key(0), (-1, 784))
    (W1, b1), (W2, b2) = [p for p in params if isinstance(p, DenseParams)]
    assert W1.shape == (784, 30) and W2.shape == (30, 10)
    W = np.concatenate([np.ravel(W1), np.ravel(W2)])            # 23,820 draws: sd of the sd estimate ~0.005
    assert abs(W.mean()) < 0.03 and abs(W.std() - 1) < 0.025     # (Glorot's would be ~0.05, LeCun's ~0.036)
    b = np.concatenate([np.ravel(b1), np.ravel(b2)])            # 40 draws
    assert 0.6 < b.std() < 1.4
    shapes = jax.eval_shape(lambda k: nn.network(0).init(k, (-1, 784))[1], jax.random.key(0))   # the 784-10 net
    assert [p.W.shape for p in shapes if isinstance(p, DenseParams)] == [(784, 10)]


def test_bad_arguments_are_refused_with_the_fix(capsys):
    with pytest.raises(ValueError, match=r"network: expected hidden >= 0 units \(0 for the 784-10 network\), got -1"):
        nn.network(-1)
    with pytest.raises(ValueError, match=r"train: expected cost in \['cross-entropy', 'quadratic'\], got 'mse'"):
        nn.train(None, None, None, None, epochs=1, key=None, cost="mse")
    with pytest.raises(SystemExit):
        nn.main(["--seeds", "0"])
    assert "--seeds and --epochs must be >= 1, got --seeds 0" in capsys.readouterr().err


def _write_idx(path, array, compress):
    raw = struct.pack(f">BBBB{array.ndim}I", 0, 0, 0x08, array.ndim, *array.shape) + array.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(raw) if compress else raw)


def _accuracy(params, images, labels):
    w, b = _dense(params)
    a = images.reshape(len(images), -1).T.astype(np.float64) / 255
    for wl, bl in zip(w, b):
        a = sigmoid(wl @ a + bl)
    return np.mean(a.argmax(axis=0) == labels)


def test_quick_mode_reads_mnist_idx_files_and_prints_the_table(tmp_path):
    rng = np.random.default_rng(0)
    train_y, test_y = rng.integers(0, 10, 60), rng.integers(0, 10, 20)
    # images that carry their label (a bright row band) so the network learns something in 2 epochs
    train_x, test_x = (rng.integers(0, 60, (n, 28, 28)) for n in (60, 20))
    for x, y in ((train_x, train_y), (test_x, test_y)):
        for i, k in enumerate(y):
            x[i, 2 * k + 4:2 * k + 6] = 255
    _write_idx(tmp_path / "train-images-idx3-ubyte", train_x, False)
    _write_idx(tmp_path / "train-labels-idx1-ubyte", train_y, False)
    _write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", test_x, True)
    _write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", test_y, True)
    lines = []
    out = nn.run(hidden=30, quick=True, mnist_dir=tmp_path, print_fn=lines.append)
    assert (out["data"], out["n_train"], out["n_held_out"], out["n_test"], out["epochs"]) == ("MNIST", 50, 10, 20, 2)
    assert lines[0].startswith("784-30-10 sigmoid, quadratic cost, SGD eta=3.0, mini-batch 10, MNIST: 50 train")
    table = lines[1].splitlines()
    assert table[0] == "| epoch | test, seed 0 | test, mean | held out, mean |" and len(table) == 5
    assert table[3].startswith("| 2 | ") and table[4].startswith("best test epoch: ")
    # the reported accuracies are the trained network's on the files' test images and the last 10 training images
    params = out["params"][0]
    assert out["test"][0][-1] == pytest.approx(_accuracy(params, test_x, test_y), abs=1e-6)
    assert out["held_out"][0][-1] == pytest.approx(_accuracy(params, train_x[50:], train_y[50:]), abs=1e-6)
    assert f"| 2 | {100 * out['test'][0][-1]:.2f} |" in lines[1]
