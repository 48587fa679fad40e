"""A GRU classifier reading Fashion-MNIST images row by row (28 steps of 28 pixels).

Model: ``serial(RNN(GRUCell(H), return_sequences=False), Dense(10))``: the GRU reads the image top to bottom and
its last hidden state is classified. Trained with fnn's Adam (learning rate on a cosine decay to 0 over the
run) on softmax cross-entropy, minibatches reshuffled each epoch, every epoch one jitted ``lax.scan`` over the
minibatches. The reference to beat is the Fashion-MNIST benchmark table's GRU + SVM entry, 0.888 test accuracy.

Run:  python examples/gru_fashion.py [--epochs 15] [--hidden 128] [--quick]

Reference: Xiao, Rasul & Vollgraf, "Fashion-MNIST: a novel image dataset for benchmarking machine learning
algorithms", arXiv:1708.07747, 2017 (benchmark table in the project's README: "GRU+SVM", 0.888); Cho et al.,
EMNLP 2014 (the GRU).
"""
import argparse
import time

import jax
import jax.numpy as jnp

from fnn import optimizers as opt
from fnn.data import load_fashion_mnist
from fnn.layers import Dense, serial
from fnn.layers.recurrent import RNN, GRUCell
from fnn.losses import softmax_cross_entropy_with_integer_labels as cross_entropy
from fnn.optimizers import schedules


def load(n_train=None, n_test=None):
    """Images as sequences of rows: X (n, 28, 28) float32 in [0, 1], y (n,) int32."""
    X, y = load_fashion_mnist(split="train", flatten=False)
    Xt, yt = load_fashion_mnist(split="test", flatten=False)
    return X[:n_train, :, :, 0], y[:n_train], Xt[:n_test, :, :, 0], yt[:n_test]


def run(quick=False, epochs=15, hidden=128, batch=128, lr=2e-3, seed=0, log=None):
    """Train and evaluate; returns accuracies, per-epoch history and the settings (``log(dict)`` per epoch)."""
    if quick:
        epochs, hidden, batch, lr, n_train, n_test = 2, 32, 64, 3e-3, 3000, 1000
    else:
        n_train = n_test = None
    X, y, Xt, yt = load(n_train, n_test)
    model = serial(RNN(GRUCell(hidden), return_sequences=False), Dense(10))
    k_init, k_shuffle = jax.random.split(jax.random.key(seed))
    _, params = model.init(k_init, (-1, 28, 28))
    n_batches = len(X) // batch
    optimizer = opt.adam(schedules.cosine(lr, epochs * n_batches))
    state = optimizer.init(params)
    X_dev, y_dev = jnp.asarray(X), jnp.asarray(y)

    def loss_fn(params, xb, yb):
        return cross_entropy(model.apply(params, xb), yb)

    @jax.jit
    def epoch(params, state, key):
        order = jax.random.permutation(key, len(X))[:n_batches * batch].reshape(n_batches, batch)

        def step(carry, idx):
            params, state = carry
            loss, grads = jax.value_and_grad(loss_fn)(params, X_dev[idx], y_dev[idx])
            updates, state = optimizer.update(grads, state, params)
            return (opt.apply_updates(params, updates), state), loss
        (params, state), losses = jax.lax.scan(step, (params, state), order)
        return params, state, jnp.mean(losses)

    @jax.jit
    def correct(params, xb, yb):
        return jnp.sum(jnp.argmax(model.apply(params, xb), -1) == yb)

    def accuracy(params, X, y, chunk=1000):  # one chunk shape for both sets: one compile
        return sum(int(correct(params, X[i:i + chunk], y[i:i + chunk])) for i in range(0, len(X), chunk)) / len(X)

    history, start = [], time.perf_counter()
    for e in range(epochs):
        params, state, loss = epoch(params, state, jax.random.fold_in(k_shuffle, e))
        history.append({"epoch": e + 1, "train_loss": float(loss), "test_accuracy": accuracy(params, Xt, yt),
                        "seconds": time.perf_counter() - start})
        if log is not None:
            log(history[-1])
    return {"test_accuracy": history[-1]["test_accuracy"], "train_accuracy": accuracy(params, X, y),
            "history": history, "settings": dict(epochs=epochs, hidden=hidden, batch=batch, lr=lr,
                                                  n_train=len(X), n_test=len(Xt))}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny settings for the test suite")
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--hidden", type=int, default=128)
    args = parser.parse_args()
    r = run(quick=args.quick, epochs=args.epochs, hidden=args.hidden, log=lambda h: print(h, flush=True))
    print(f"GRU row-by-row Fashion-MNIST; settings {r['settings']}")
    print(f"| {'epoch':>5} | {'train loss':>10} | {'test accuracy':>13} | {'seconds':>7} |")
    print(f"|{'-' * 7}|{'-' * 12}|{'-' * 15}|{'-' * 9}|")
    for h in r["history"]:
        print(f"| {h['epoch']:>5} | {h['train_loss']:>10.4f} | {h['test_accuracy']:>13.4f} | {h['seconds']:>7.1f} |")
    print(f"final: train accuracy {r['train_accuracy']:.4f}, test accuracy {r['test_accuracy']:.4f} "
          f"(reference GRU+SVM: 0.888)")


if __name__ == "__main__":
    main()
