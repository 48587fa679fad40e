"""``fnn evaluate`` and ``fnn predict``: use the model a ``fnn train`` run kept (``fnn.train.load_run``).

    fnn evaluate runs/digits-mlp                   # the test split again: the accuracy of results.json, exactly
    fnn evaluate runs/digits-mlp --split val
    fnn predict runs/digits-mlp images.npy --out pred.csv --probabilities

``evaluate`` rebuilds the run's split from its ``config.json`` (dataset, model kind, seed; ``--data-dir`` for the
IDX files) and evaluates the kept model with ``fnn.train.evaluate``, the function ``fnn train`` reported with.
``predict`` reads raw inputs, as the dataset loaders give them (``fnn.data``: pixels scaled to [0, 1]; integer
arrays are read as the raw pixel counts, 0..16 for digits and 0..255 for MNIST-style sets, and scaled the same way),
from a ``.npy`` file of shape ``(n, 64)`` / ``(n, 8, 8)`` (digits) or ``(n, 784)`` / ``(n, 28, 28)`` (MNIST-style),
or from an IDX file (``fnn.data.read_idx``, gzip or plain), and writes the predicted classes (with ``--probabilities``
the softmax probabilities too) to ``--out`` (``.npy`` or ``.csv``) or stdout. User mistakes end with one line on
stderr and exit status 2 (usage) or 1 (run or data problems), never a traceback.
"""
from __future__ import annotations

import json
import os

from fnn.cli.run_files import fail, load_splits

__all__ = ["add_parsers", "run_evaluate", "run_predict", "read_inputs"]


def add_parsers(sub):
    e = sub.add_parser("evaluate", help="evaluate the model a run kept on its test (or validation) split",
                       description="Evaluate the model `fnn train --out RUN` kept, on the same split.")
    e.add_argument("run", metavar="RUN", help="the run folder (fnn train --out)")
    e.add_argument("--split", choices=("test", "val"), default="test")
    e.add_argument("--data-dir", default=None, help="folder with the IDX files (Fashion-MNIST/MNIST)")
    e.add_argument("--json", action="store_true", help="print one JSON object instead of the sentence")
    p = sub.add_parser("predict", help="predict the classes of raw inputs with the model a run kept",
                       description="Predict classes (and probabilities) of raw inputs in a .npy or IDX file.")
    p.add_argument("run", metavar="RUN", help="the run folder (fnn train --out)")
    p.add_argument("file", metavar="FILE", help="raw inputs: .npy of shape (n, 64)/(n, 8, 8) for digits, "
                   "(n, 784)/(n, 28, 28) for MNIST-style sets, or an IDX image file")
    p.add_argument("--out", default=None, help="PRED.npy (classes; probabilities in PRED.probabilities.npy) or "
                   "PRED.csv (a column per class probability); default: CSV on stdout")
    p.add_argument("--probabilities", action="store_true", help="also write the softmax probabilities")
    return e, p


def _load_run(path, command):
    from fnn.train import load_run
    try:
        return load_run(path)
    except (OSError, ValueError) as e:
        fail(f"{command}: {str(e).removeprefix('load_run: ')}", 1)


def run_evaluate(args) -> int:
    """``fnn evaluate``: loss and accuracy of the kept model on the run's split (printed; ``--json``: one object)."""
    from fnn import losses
    from fnn.train import evaluate
    run = _load_run(args.run, "fnn evaluate")
    c = run.config
    try:
        train, val, test, _ = load_splits(c["dataset"], c["model"], c["seed"], args.data_dir)
    except (OSError, ValueError) as e:
        fail(f"fnn evaluate: {e}", 1)
    X, y = test if args.split == "test" else val
    result = evaluate(run.apply, run.params, losses.softmax_cross_entropy_with_integer_labels, X, y)
    record = {"split": args.split, "examples": len(y), "accuracy": float(result["accuracy"]),
              "loss": float(result["loss"])}
    if args.json:
        print(json.dumps(record))
    else:
        print(f"fnn evaluate {args.run}: {args.split} split ({len(y)} examples): accuracy {record['accuracy']:.4f}  "
              f"loss {record['loss']:.4f}")
    return 0


def read_inputs(path, dataset):
    """The raw inputs in ``path`` (``.npy`` or IDX) as float32 on the loaders' [0, 1] scale (integers: pixel counts)."""
    import numpy as np

    from fnn.data import read_idx
    if not os.path.isfile(path):
        fail(f"fnn predict: no file {path!r}; expected a .npy or IDX file of raw inputs", 1)
    if path.endswith(".npy"):
        try:
            X = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as e:
            fail(f"fnn predict: {path!r} is not a readable .npy array ({e}); save inputs with numpy.save", 1)
    else:
        try:
            X = read_idx(path)
        except (OSError, ValueError):
            fail(f"fnn predict: {path!r} is neither a .npy file nor an IDX file; expected a .npy array (numpy.save) "
                 f"or an IDX image file such as t10k-images-idx3-ubyte(.gz)", 1)
    if X.dtype.kind in "iu":
        X = X.astype(np.float32) / np.float32(16.0 if dataset == "digits" else 255.0)
    elif X.dtype.kind != "f":
        fail(f"fnn predict: {path!r} holds {X.dtype} values; expected pixel numbers (float or integer)", 1)
    elif X.size and not (np.nanmin(X) >= -1e-6 and np.nanmax(X) <= 1 + 1e-6):
        top = 16 if dataset == "digits" else 255
        fail(f"fnn predict: {path!r} holds float values from {float(np.nanmin(X)):g} to {float(np.nanmax(X)):g}; "
             f"expected float pixels in [0, 1] (as fnn.data's loaders give) or integer pixel counts 0..{top}; "
             f"divide by {top} (e.g. sklearn's digits.data / 16) or save the counts as integers", 1)
    return X


def run_predict(args) -> int:
    """``fnn predict``: predicted classes (and probabilities) of the raw inputs in FILE."""
    import jax
    import numpy as np

    from fnn.train import predict
    out = args.out
    if out is not None and not out.endswith((".npy", ".csv")):
        fail(f"fnn predict: --out {out!r}: expected a file name ending in .npy or .csv", 2)
    run = _load_run(args.run, "fnn predict")
    X = read_inputs(args.file, run.config["dataset"])
    try:
        Xp = run.prepare(X)
    except ValueError as e:
        fail(f"fnn predict: {args.file}: {str(e).removeprefix('prepare: ')} (the run was trained on "
             f"{run.config['dataset']})", 1)
    probs = np.asarray(jax.nn.softmax(predict(run.apply, run.params, Xp), axis=-1), np.float32)
    classes = probs.argmax(-1).astype(np.int32)
    header = "class" + "".join(f",p{k}" for k in range(probs.shape[1])) if args.probabilities else "class"
    rows = [str(c) + ("".join(f",{p:.6g}" for p in row) if args.probabilities else "")
            for c, row in zip(classes, probs)]
    if out is None:
        print("\n".join([header] + rows))
        return 0
    os.makedirs(os.path.dirname(out) or ".", exist_ok=True)
    if out.endswith(".csv"):
        with open(out, "w") as f:
            f.write("\n".join([header] + rows) + "\n")
        wrote = out
    else:
        np.save(out, classes)
        wrote = out
        if args.probabilities:
            np.save(out[:-4] + ".probabilities.npy", probs)
            wrote += f" and {out[:-4]}.probabilities.npy"
    counts = np.bincount(classes, minlength=probs.shape[1])
    print(f"fnn predict: {len(classes)} inputs; classes {' '.join(f'{k}:{n}' for k, n in enumerate(counts))}; "
          f"wrote {wrote}")
    return 0
