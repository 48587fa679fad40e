"""``fnn train``: train an MLP or a small CNN on digits, Fashion-MNIST or MNIST; write history, curves and results.

``fnn train`` splits the data (digits: 70/15/15 train/validation/test; MNIST-style sets: the last 5,000 training
images for validation, the official test set for the test), standardises the inputs with statistics of the
training split only, trains with ``fnn.train.fit`` (checkpoints every epoch in ``<out>/checkpoints``), restores the
epoch with the best validation accuracy, evaluates once on the test split, and writes ``history.json``,
``curves.png`` and ``results.json`` to ``--out``, and the best model with its standardisation statistics to
``<out>/model`` (:func:`load_model` reads it back).

``--out`` holds one run: a fresh run into a folder that holds another is refused unless ``--overwrite`` (which
deletes it first); ``--resume`` needs a run there with the same settings (every difference is named) and at least
as many ``--epochs`` as were trained. Every user mistake ends with one line on stderr and exit status 2 (usage:
options, folders) or 1 (data or run problems), never a traceback.
"""
from __future__ import annotations

import json
import math
import os
import shutil
import sys
import time

from fnn.cli.args import non_negative_int, widths

__all__ = ["DEFAULTS", "build_model", "add_parser", "run", "load_model", "CommandError"]

#: the run's settings that a resume must repeat (``epochs`` may grow)
SAME_ON_RESUME = ("dataset", "model", "hidden", "optimizer", "lr", "schedule", "batch_size", "seed")

# Per-dataset defaults: (hidden widths, optimizer, learning rate, epochs, batch size).
DEFAULTS = {
    "digits": {"hidden": "128", "optimizer": "adam", "lr": 3e-3, "epochs": 30, "batch_size": 32},
    "fashion-mnist": {"hidden": "256,128", "optimizer": "adam", "lr": 1e-3, "epochs": 15, "batch_size": 128},
    "mnist": {"hidden": "256,128", "optimizer": "adam", "lr": 1e-3, "epochs": 10, "batch_size": 128},
}


def build_model(name: str, hidden, num_classes: int, image_shape=None):
    """The models of ``fnn train``: an MLP with ReLU hidden layers, or a small CNN.

    CNN: ``Conv(c1, 3x3, SAME), ReLU, MaxPool(2x2, stride 2), Conv(c2, 3x3, SAME), ReLU, MaxPool(2x2, stride 2),
    Flatten, Dense(num_classes)`` with ``(c1, c2) = hidden[:2]`` (default 32, 64). Inputs are NHWC images.

    Args:
      name: ``"mlp"`` or ``"cnn"``.
      hidden: list of widths (MLP hidden layers / CNN channels).
      num_classes: outputs (logits).
      image_shape: ``(H, W, C)`` for the CNN.

    Returns:
      A ``fnn.layers.Layer``.
    """
    from fnn import layers as L
    if name == "mlp":
        return L.mlp(list(hidden) + [num_classes], L.Relu)
    if name == "cnn":
        c1, c2 = (list(hidden) + [32, 64])[:2] if len(hidden) < 2 else hidden[:2]
        return L.serial(L.Conv(c1, (3, 3), padding="SAME"), L.Relu, L.MaxPool((2, 2), (2, 2)),
                        L.Conv(c2, (3, 3), padding="SAME"), L.Relu, L.MaxPool((2, 2), (2, 2)),
                        L.Flatten, L.Dense(num_classes))
    raise ValueError(f"fnn train: unknown model {name!r}; expected 'mlp' or 'cnn'")


class CommandError(SystemExit):
    """A user mistake: its message went to stderr; ``code`` is the exit status (2 usage, 1 data or run problem)."""

    def __init__(self, message: str, status: int):
        super().__init__(status)
        self.message = message

    def __str__(self) -> str:
        return self.message


def _fail(message: str, status: int):
    print(message, file=sys.stderr)
    raise CommandError(message, status)


def _load(dataset, model, seed, data_dir):
    """``(train, val, test, norm)``: the splits standardised with the training split's statistics, and those."""
    import jax
    import numpy as np

    from fnn import data
    flat = model == "mlp"
    if dataset == "digits":
        X, y = data.load_digits(flatten=flat)
        train, val, test = data.train_val_test_split(X, y, (0.7, 0.15, 0.15), key=jax.random.key(seed),
                                                     stratify=True)
    else:
        loader = data.load_fashion_mnist if dataset == "fashion-mnist" else data.load_mnist
        X, y = loader(data_dir, split="train", flatten=flat)
        test = loader(data_dir, split="test", flatten=flat)
        train, val = (X[:-5000], y[:-5000]), (X[-5000:], y[-5000:])
    stats = data.fit_standardizer(train[0].reshape(len(train[0]), -1))
    if flat:
        norm = {"mean": np.asarray(stats.mean, np.float32), "std": np.asarray(stats.std, np.float32)}
    else:   # images: one mean/std for all pixels
        norm = {"mean": np.float32(stats.mean.mean()), "std": np.float32(np.sqrt((stats.std ** 2).mean()))}
    return (*(_standardise(part, norm) for part in (train, val, test)), norm)


def _standardise(part, norm):
    import numpy as np
    X, y = part
    return ((np.asarray(X, np.float32) - norm["mean"]) / norm["std"]).astype(np.float32), y


def add_parser(sub):
    p = sub.add_parser("train", help="train a model and write history, curves and results to --out",
                       description="Train an MLP or a small CNN on digits, Fashion-MNIST or MNIST.")
    p.add_argument("--dataset", choices=sorted(DEFAULTS), default="digits")
    p.add_argument("--model", choices=("mlp", "cnn"), default="mlp")
    p.add_argument("--hidden", type=widths, default=None,
                   help="hidden widths (MLP) or channels (CNN), comma-separated (default per dataset; CNN 32,64)")
    p.add_argument("--optimizer", default=None, help="an fnn rule (sgd, momentum, adam, ...) or optax:<name>")
    p.add_argument("--lr", type=float, default=None, help="learning rate (default per dataset)")
    p.add_argument("--schedule", choices=("constant", "cosine"), default=None,
                   help="learning rate: constant, or cosine decay from --lr to 0 over all the training steps "
                        "(default: cosine for --model cnn, constant for mlp)")
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--seed", type=non_negative_int, default=0)
    p.add_argument("--out", default=None, help="output folder (default runs/<dataset>-<model>)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its newest checkpoint")
    p.add_argument("--overwrite", action="store_true", help="delete the run already in --out and start afresh")
    p.add_argument("--patience", type=int, default=None, help="early stopping on validation accuracy")
    p.add_argument("--epoch-mode", choices=("auto", "scan", "loop"), default="auto")
    p.add_argument("--data-dir", default=None, help="folder with the IDX files (Fashion-MNIST/MNIST)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def _settings(args) -> dict:
    """The run's settings from the options and the dataset's defaults, checked (usage errors exit 2)."""
    d = DEFAULTS[args.dataset]
    cfg = {"dataset": args.dataset, "model": args.model,
           "hidden": args.hidden or ([32, 64] if args.model == "cnn" else widths(d["hidden"])),
           "optimizer": args.optimizer or d["optimizer"], "lr": d["lr"] if args.lr is None else args.lr,
           "schedule": args.schedule or ("cosine" if args.model == "cnn" else "constant"),
           "epochs": d["epochs"] if args.epochs is None else args.epochs,
           "batch_size": d["batch_size"] if args.batch_size is None else args.batch_size, "seed": args.seed}
    for name, key in (("--epochs", "epochs"), ("--batch-size", "batch_size")):
        if cfg[key] < 1:
            _fail(f"fnn train: {name} must be >= 1, got {cfg[key]}", 2)
    if args.patience is not None and args.patience < 1:
        _fail(f"fnn train: --patience must be >= 1 (epochs without improvement), got {args.patience}", 2)
    if not (math.isfinite(cfg["lr"]) and cfg["lr"] > 0):
        _fail(f"fnn train: --lr must be > 0 and finite, got {cfg['lr']}", 2)
    return cfg


def _prepare_out(out, cfg, args):
    """Check ``--out`` for a fresh run or a resume (see the module docstring) before anything is trained."""
    from fnn.train import checkpoint
    if os.path.exists(out) and not os.path.isdir(out):
        _fail(f"fnn train: --out {out!r} is a file; expected a folder (it is created if missing)", 2)
    if args.resume and args.overwrite:
        _fail("fnn train: --resume continues the run in --out, --overwrite deletes it: pass one of them", 2)
    ckpt_dir = os.path.join(out, "checkpoints")
    steps = checkpoint.all_steps(ckpt_dir)
    config_path = os.path.join(out, "config.json")
    saved = None
    if os.path.exists(config_path):
        try:
            with open(config_path) as f:
                saved = json.load(f)
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            _fail(f"fnn train: {config_path!r} is corrupt ({e}); start afresh with --overwrite", 1)
    if not args.resume:
        if steps or saved is not None:
            if not args.overwrite:
                _fail(f"fnn train: {out!r} already holds a run ({len(steps)} checkpoint(s)); continue it with "
                      f"--resume, replace it with --overwrite, or choose another --out", 1)
            shutil.rmtree(ckpt_dir, ignore_errors=True)
            shutil.rmtree(os.path.join(out, "model"), ignore_errors=True)
            for name in ("config.json", "results.json", "history.json", "curves.png"):
                if os.path.exists(os.path.join(out, name)):
                    os.unlink(os.path.join(out, name))
        return
    if not steps:
        _fail(f"fnn train: nothing to resume in {out!r}: expected the checkpoints of an earlier run in "
              f"{ckpt_dir!r}; start a new run without --resume", 1)
    if saved is not None:
        diffs = [f"{k} (saved {saved.get(k)!r}, now {cfg[k]!r})" for k in SAME_ON_RESUME if saved.get(k) != cfg[k]]
        if diffs:
            _fail(f"fnn train: --resume with other settings than the run in {out!r}: " + "; ".join(diffs)
                  + "; repeat the run's options, or start a new run in another --out", 1)
    if steps[-1] > cfg["epochs"]:
        _fail(f"fnn train: the run in {out!r} has trained {steps[-1]} epochs, more than --epochs {cfg['epochs']}; "
              f"ask for at least {steps[-1]}", 1)
    if steps[-1] == cfg["epochs"]:
        _fail(f"fnn train: the run in {out!r} has already trained its {steps[-1]} epochs: nothing to resume (its "
              f"results.json stands); ask for more --epochs to continue it", 1)


def run(args) -> int:
    """Run ``fnn train`` with parsed arguments; returns the exit status (user mistakes raise CommandError)."""
    cfg = _settings(args)
    out = args.out or os.path.join("runs", f"{args.dataset}-{args.model}")
    _prepare_out(out, cfg, args)
    try:
        train, val, test, norm = _load(args.dataset, args.model, args.seed, args.data_dir)
    except (OSError, ValueError) as e:
        _fail(f"fnn train: {e}", 1)
    if cfg["batch_size"] > len(train[0]):
        _fail(f"fnn train: --batch-size {cfg['batch_size']} is larger than the training split "
              f"({len(train[0])} examples); use at most {len(train[0])}", 2)
    try:
        return _train(args, cfg, out, train, val, test, norm)
    except (OSError, ValueError) as e:   # a run problem fit or the files reported (the message names it)
        _fail(f"fnn train: {e}", 1)


def _train(args, cfg, out, train, val, test, norm) -> int:
    import jax

    from fnn import losses, optimizers
    from fnn.debug.plots import plot_history
    from fnn.train import callbacks, checkpoint, evaluate, fit
    epochs, batch_size, lr = cfg["epochs"], cfg["batch_size"], cfg["lr"]
    rate = lr
    if cfg["schedule"] == "cosine":
        rate = optimizers.schedules.cosine(lr, epochs * (len(train[0]) // batch_size))
    try:
        optimizer = optimizers.from_name(cfg["optimizer"], rate)
    except ValueError as e:
        _fail(f"fnn train: --optimizer: {str(e).removeprefix('from_name: ')}", 2)
    model = build_model(args.model, cfg["hidden"], 10)
    init_key, train_key = jax.random.split(jax.random.key(args.seed))
    _, params = model.init(init_key, (-1,) + train[0].shape[1:])
    loss = losses.softmax_cross_entropy_with_integer_labels
    config = dict(cfg, **{"train/val/test": [len(train[0]), len(val[0]), len(test[0])]})
    print(f"fnn train: {json.dumps(config)}; writing to {out}")
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(config, f, indent=1)
    stopper = callbacks.EarlyStopping("val_accuracy", patience=args.patience or epochs + 1, restore_best=True)
    t0 = time.perf_counter()
    params, _, history = fit(model.apply, params, optimizer, loss, *train, epochs=epochs, batch_size=batch_size,
                             key=train_key, validation=val, callbacks=[stopper], learning_rate=rate,
                             epoch_mode=args.epoch_mode, progress=False if args.no_progress else None,
                             checkpoint_dir=os.path.join(out, "checkpoints"), resume=args.resume)
    seconds = time.perf_counter() - t0
    result = evaluate(model.apply, params, loss, *test)
    history.save(os.path.join(out, "history.json"))
    plot_history(history, os.path.join(out, "curves.png"), title=f"{args.dataset} {args.model}")
    checkpoint.save(os.path.join(out, "model"), stopper.best_epoch or len(history),
                    {"params": params, "norm": norm}, keep=1)
    results = {"test_accuracy": result["accuracy"], "test_loss": result["loss"], "best_epoch": stopper.best_epoch,
               "best_val_accuracy": stopper.best, "epochs_run": len(history), "seconds": round(seconds, 2),
               "stop_reason": history.stop_reason}
    with open(os.path.join(out, "results.json"), "w") as f:
        json.dump(results, f, indent=1)
    print(f"test accuracy {result['accuracy']:.4f}  test loss {result['loss']:.4f}  (best epoch "
          f"{stopper.best_epoch}, {seconds:.1f} s); wrote history.json, curves.png, results.json and model/ to {out}")
    return 0


def load_model(out):
    """The model ``fnn train`` kept in ``out``: ``(model, params, prepare)``, ``prepare(X)`` standardising raw
    inputs with the training split's statistics, so that ``model.apply(params, prepare(X))`` gives the logits of
    the epoch reported in ``results.json``.
    """
    import jax.numpy as jnp

    from fnn.train import checkpoint
    with open(os.path.join(out, "config.json")) as f:
        config = json.load(f)
    saved = checkpoint.restore(os.path.join(out, "model"))
    shape = (8, 8, 1) if config["dataset"] == "digits" else (28, 28, 1)
    model = build_model(config["model"], config["hidden"], 10, None if config["model"] == "mlp" else shape)
    params = jax_tree_to_arrays(saved["params"])
    norm = saved["norm"]
    return model, params, lambda X: jnp.asarray(_standardise((X, None), norm)[0])


def jax_tree_to_arrays(tree):
    """NumPy leaves to JAX arrays (a restored tree's containers are kept)."""
    import jax
    import jax.numpy as jnp
    return jax.tree.map(jnp.asarray, tree)
