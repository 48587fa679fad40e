"""LSTM vs vanilla (Elman) RNN on the adding problem: which one remembers across long sequences?

Each input step is a pair (value, marker): values are U(0, 1), and exactly two markers are 1, one in the first half
of the sequence and one in the second. The target is the sum of the two marked values. Predicting the mean (1.0)
scores MSE = Var(u1 + u2) = 1/6 = 0.167; an answer is counted correct when |prediction - target| < 0.04
(Hochreiter & Schmidhuber's criterion). Both models are ``serial(RNN(cell, return_sequences=False), Dense(1))``
with the same hidden size, optimizer (fnn's Adam), number of steps and batch size; only the cell differs.

Run:  python examples/rnn_memory.py [--quick]

Reference: Hochreiter & Schmidhuber, "Long short-term memory", Neural Computation 9(8), 1997, sec. 5.4 (experiment
4, the adding problem); Le, Jaitly & Hinton, "A simple way to initialize recurrent networks of rectified linear
units", arXiv:1504.00941, 2015, sec. 4.1 (the version used here).
"""
import argparse
import time

import jax
import jax.numpy as jnp

from fnn import optimizers as opt
from fnn.layers import Dense, serial
from fnn.layers.recurrent import RNN, LSTMCell, SimpleRNNCell

CELLS = {"SimpleRNN": SimpleRNNCell, "LSTM": LSTMCell}


def adding_batch(key, batch, T):
    """(x, y): x (batch, T, 2) = [value, marker], y (batch, 1) = the sum of the two marked values."""
    kv, k1, k2 = jax.random.split(key, 3)
    values = jax.random.uniform(kv, (batch, T))
    first = jax.random.randint(k1, (batch,), 0, T // 2)
    second = jax.random.randint(k2, (batch,), T // 2, T)
    t = jnp.arange(T)[None, :]
    markers = ((t == first[:, None]) | (t == second[:, None])).astype(values.dtype)
    return jnp.stack([values, markers], -1), jnp.sum(values * markers, 1, keepdims=True)


def train_and_test(cell_name, T, *, hidden, steps, batch, lr, seed=0, n_test=1000):
    """Train one model on fresh batches; returns test MSE, accuracy (|error| < 0.04) and seconds."""
    model = serial(RNN(CELLS[cell_name](hidden), return_sequences=False), Dense(1))
    k_init, k_data, k_test = jax.random.split(jax.random.key(seed), 3)
    _, params = model.init(k_init, (-1, T, 2))
    optimizer = opt.adam(lr)

    def loss_fn(params, x, y):
        return jnp.mean((model.apply(params, x) - y) ** 2)

    @jax.jit
    def train_and_predict(params, x_test):
        def step(carry, i):
            params, state = carry
            loss, grads = jax.value_and_grad(loss_fn)(params, *adding_batch(jax.random.fold_in(k_data, i), batch, T))
            updates, state = optimizer.update(grads, state, params)
            return (opt.apply_updates(params, updates), state), loss
        (params, _), losses = jax.lax.scan(step, (params, optimizer.init(params)), jnp.arange(steps))
        return model.apply(params, x_test), losses

    start = time.perf_counter()
    x, y = adding_batch(k_test, n_test, T)
    pred, losses = train_and_predict(params, x)
    seconds = time.perf_counter() - start
    return {"mse": float(jnp.mean((pred - y) ** 2)), "accuracy": float(jnp.mean(jnp.abs(pred - y) < 0.04)),
            "final_train_loss": float(jnp.mean(losses[-50:])), "seconds": seconds}


def run(quick=False):
    """Results keyed by (cell name, sequence length)."""
    lengths, settings = ([10], dict(hidden=8, steps=30, batch=16, lr=1e-2, n_test=200)) if quick else \
        ([10, 50, 100], dict(hidden=64, steps=4000, batch=64, lr=3e-3, n_test=1000))
    return {(name, T): train_and_test(name, T, **settings) for T in lengths for name in CELLS}, settings


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny settings for the test suite")
    results, settings = run(quick=parser.parse_args().quick)
    print(f"adding problem; settings {settings}; baseline MSE (predict 1.0) = 0.167")
    print(f"| {'T':>4} | {'cell':<9} | {'test MSE':>9} | {'accuracy (|err|<0.04)':>21} | {'seconds':>7} |")
    print(f"|{'-' * 6}|{'-' * 11}|{'-' * 11}|{'-' * 23}|{'-' * 9}|")
    for (name, T), r in results.items():
        print(f"| {T:>4} | {name:<9} | {r['mse']:>9.4f} | {r['accuracy']:>21.3f} | {r['seconds']:>7.1f} |")


if __name__ == "__main__":
    main()
