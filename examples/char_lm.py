"""A character-level LSTM language model trained with truncated BPTT: bits per character vs window length.

The corpus is the documentation strings (module, class and function docstrings) of a fixed list of standard-library
modules, read from this Python's own stdlib directory (always present; nothing is downloaded), kept to printable
ASCII and newlines. The first 90% is the training text, the last 10% the test text. The training text is cut into
B parallel streams (time-major ``(T, B)``); the model reads one character per step and predicts the next:

    step(params, (h, c), x_t) = LSTM(one_hot(x_t)) -> logits h_t R + b       loss = softmax cross-entropy

Every run sees the same characters (``--epochs`` passes over the training streams, the state carried across windows
and reset to zero at each pass); only the truncation changes: k1 = k2 = k for each k, and one BPTT(h; h') run
(k1 < k2). Test bits per character = -mean log2 p(next char), with the state carried over the whole test streams.
Memory: XLA's temp buffer size of the compiled training pass over the training streams
(``jax.jit(...).lower(...).compile().memory_analysis()``) for each k and for full BPTT (one window = the stream).

Run:  python examples/char_lm.py [--quick]

Reference: Williams & Peng, Neural Computation 2(4), 1990 (BPTT(h; h')); Graves, "Generating sequences with
recurrent neural networks", arXiv:1308.0850, 2013, sec. 3 (character-level LSTM, bits per character).
"""
import argparse
import ast
import os
import sysconfig
import time

import jax
import jax.numpy as jnp
import numpy as np

from fnn import optimizers as opt
from fnn.layers.recurrent import LSTMCell
from fnn.train.truncated import bits_per_character, make_tbptt, window_loss

MODULES = ["os.py", "collections/__init__.py", "argparse.py", "functools.py", "inspect.py", "typing.py",
           "subprocess.py", "pathlib.py", "json/__init__.py", "logging/__init__.py", "textwrap.py", "shutil.py",
           "tempfile.py", "random.py", "statistics.py", "datetime.py", "threading.py", "dataclasses.py",
           "enum.py", "contextlib.py", "string.py", "difflib.py", "heapq.py", "bisect.py", "fractions.py",
           "decimal.py", "_pydecimal.py", "calendar.py", "csv.py", "pickle.py", "configparser.py", "unittest/case.py"]


def stdlib_docstrings(max_chars: int | None = None) -> str:
    """The docstrings of MODULES (those present) joined by blank lines, printable ASCII and newlines only."""
    root, parts = sysconfig.get_paths()["stdlib"], []
    for rel in MODULES:
        path = os.path.join(root, rel)
        if not os.path.exists(path):
            continue
        with open(path, encoding="utf-8") as f:
            tree = ast.parse(f.read())
        for node in ast.walk(tree):
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                doc = ast.get_docstring(node)
                if doc:
                    parts.append(doc)
    text = "".join(ch for ch in "\n\n".join(parts) if ch == "\n" or 32 <= ord(ch) < 127)
    return text[:max_chars] if max_chars else text


def streams(ids: np.ndarray, B: int, k: int):
    """Cut ids into B contiguous streams of length L (a multiple of k): xs, ys (L, B), ys the next character."""
    L = (len(ids) - 1) // B // k * k
    x = ids[:L * B].reshape(B, L).T
    y = ids[1:L * B + 1].reshape(B, L).T
    return jnp.asarray(x), jnp.asarray(y)


def make_model(V: int, H: int):
    cell = LSTMCell(H)

    def init(key):
        kc, kr = jax.random.split(key)
        return {"cell": cell.init(kc, V), "R": jax.random.normal(kr, (H, V)) / np.sqrt(H), "b": jnp.zeros(V)}

    def step(p, carry, x):
        carry, h = cell.apply(p["cell"], carry, jax.nn.one_hot(x, V))
        return carry, h @ p["R"] + p["b"][None, :]          # (B, V): the bias broadcast over the streams

    def xent(logits, y):
        return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(logits), y[:, None], -1))

    return init, step, xent, cell.initial_carry


def temp_bytes(fn, *args) -> int:
    return int(jax.jit(fn).lower(*args).compile().memory_analysis().temp_size_in_bytes)


def run(k1, k2, data, *, V, H, B, epochs, lr, seed):
    """Train with TBPTT(k1, k2); returns (test bits per char, train bpc of the last pass, updates, seconds, temp)."""
    (xs, ys), (xt, yt) = data
    init, step, xent, zeros = make_model(V, H)
    params = init(jax.random.key(seed))
    optimizer = opt.chain(opt.transforms.clip_by_global_norm(1.0), opt.adam(lr))
    state = optimizer.init(params)
    train = make_tbptt(step, xent, optimizer, k1, k2)
    t0 = time.time()
    for _ in range(epochs):
        r = train(params, state, zeros((B,)), xs, ys)
        params, state = r.params, r.opt_state
    train_bpc = float(jnp.mean(r.losses)) / np.log(2)
    seconds = time.time() - t0
    test = jax.jit(lambda p: window_loss(step, bits_per_character, p, zeros((xt.shape[1],)), xt, yt)[0])
    temp = temp_bytes(train, params, state, zeros((B,)), xs, ys)
    return float(test(params)), train_bpc, epochs * xs.shape[0] // k1, seconds, temp


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="a tiny run for the tests")
    ap.add_argument("--seeds", type=int, default=2)
    args = ap.parse_args()
    if args.quick:
        H, B, epochs, ks, chars, seeds = 16, 4, 1, [(5, 5), (5, 10)], 2_000, 1
    else:
        H, B, epochs, ks, chars, seeds = 128, 32, 2, [(5, 5), (10, 10), (25, 25), (50, 50), (100, 100),
                                                       (10, 50)], None, args.seeds
    text = stdlib_docstrings(chars)
    vocab = sorted(set(text))
    ids = np.array([vocab.index(c) for c in text], np.int32)
    cut = int(0.9 * len(ids))
    V = len(vocab)
    # every run reads the same characters: the train streams are cut to a multiple of the largest k1
    kmax = max(k for k, _ in ks)
    data = (streams(ids[:cut], B, kmax), streams(ids[cut:], max(1, B // 4), 1))
    L = data[0][0].shape[0]
    print(f"corpus: {len(text):,} chars of stdlib docstrings, vocab {V}; train {L} steps x {B} streams = "
          f"{L * B:,} chars/epoch, {epochs} epochs; test {data[1][0].size:,} chars; LSTM H={H}")
    print(f"{'k1':>4} {'k2':>4} {'updates':>8} {'test bpc (mean +- sd over seeds)':>34} {'train bpc':>10} "
          f"{'temp MiB':>9} {'s/run':>6}")
    for k1, k2 in ks:
        rows = [run(k1, k2, data, V=V, H=H, B=B, epochs=epochs, lr=3e-3, seed=s) for s in range(seeds)]
        test = np.array([r[0] for r in rows])
        print(f"{k1:>4} {k2:>4} {rows[0][2]:>8} {test.mean():>26.3f} +- {test.std():.3f} "
              f"{np.mean([r[1] for r in rows]):>10.3f} {rows[0][4] / 2**20:>9.2f} "
              f"{np.mean([r[3] for r in rows]):>6.1f}", flush=True)
    # memory of full BPTT over the training streams: one window of L steps (compiled, not run)
    init, step, xent, zeros = make_model(V, H)
    params = init(jax.random.key(0))
    optimizer = opt.adam(3e-3)
    full = make_tbptt(step, xent, optimizer, L, L)
    mb = temp_bytes(full, params, optimizer.init(params), zeros((B,)), *data[0]) / 2**20
    print(f"full BPTT (k1 = k2 = L = {L}): temp {mb:.2f} MiB (compiled only)")


if __name__ == "__main__":
    main()
