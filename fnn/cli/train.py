"""``fnn train``: train an MLP or a small CNN on digits, Fashion-MNIST or MNIST; write history, curves and results.

``fnn train`` splits the data (digits: 70/15/15 train/validation/test; MNIST-style sets: the last 5,000 training
images for validation, the official test set for the test), standardises the inputs with statistics of the
training split only, trains with ``fnn.train.fit`` (checkpoints every epoch in ``<out>/checkpoints``), restores the
epoch with the best validation accuracy, evaluates once on the test split, and writes ``history.json``,
``curves.png`` and ``results.json`` to ``--out``.
"""
from __future__ import annotations

import argparse
import json
import os
import time

__all__ = ["DEFAULTS", "build_model", "add_parser", "run"]

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


def _load(dataset, model, seed, data_dir):
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
    scalar = data.Stats(np.float32(stats.mean.mean()), np.float32(np.sqrt((stats.std ** 2).mean())))

    def norm(part):
        Xp, yp = part
        if flat:
            return data.standardize(Xp, stats), yp
        return ((Xp - scalar.mean) / scalar.std).astype(np.float32), yp   # images: one mean/std for all pixels

    return norm(train), norm(val), norm(test)


def _hidden(text):
    try:
        widths = [int(w) for w in text.split(",") if w.strip()]
    except ValueError:
        widths = []
    if not widths or min(widths) < 1:
        raise argparse.ArgumentTypeError(f"--hidden: expected comma-separated positive widths like 128 or "
                                         f"256,128, got {text!r}")
    return widths


def add_parser(sub):
    p = sub.add_parser("train", help="train a model and write history, curves and results to --out",
                       description="Train an MLP or a small CNN on digits, Fashion-MNIST or MNIST.")
    p.add_argument("--dataset", choices=sorted(DEFAULTS), default="digits")
    p.add_argument("--model", choices=("mlp", "cnn"), default="mlp")
    p.add_argument("--hidden", type=_hidden, default=None,
                   help="hidden widths (MLP) or channels (CNN), comma-separated (default per dataset; CNN 32,64)")
    p.add_argument("--optimizer", default=None, help="an fnn rule (sgd, momentum, adam, ...) or optax:<name>")
    p.add_argument("--lr", type=float, default=None, help="learning rate (default per dataset)")
    p.add_argument("--schedule", choices=("constant", "cosine"), default=None,
                   help="learning rate: constant, or cosine decay from --lr to 0 over all the training steps "
                        "(default: cosine for --model cnn, constant for mlp)")
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="output folder (default runs/<dataset>-<model>)")
    p.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in --out")
    p.add_argument("--patience", type=int, default=None, help="early stopping on validation accuracy")
    p.add_argument("--epoch-mode", choices=("auto", "scan", "loop"), default="auto")
    p.add_argument("--data-dir", default=None, help="folder with the IDX files (Fashion-MNIST/MNIST)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def run(args) -> int:
    """Run ``fnn train`` with parsed arguments; returns the exit status."""
    import jax
    from fnn import losses, optimizers
    from fnn.train import callbacks
    from fnn.debug.plots import plot_history
    from fnn.train import evaluate, fit

    d = DEFAULTS[args.dataset]
    hidden = args.hidden or ([32, 64] if args.model == "cnn" else _hidden(d["hidden"]))
    opt_name = args.optimizer or d["optimizer"]
    lr = d["lr"] if args.lr is None else args.lr
    epochs = d["epochs"] if args.epochs is None else args.epochs
    batch_size = d["batch_size"] if args.batch_size is None else args.batch_size
    out = args.out or os.path.join("runs", f"{args.dataset}-{args.model}")
    for name, value in (("--epochs", epochs), ("--batch-size", batch_size)):
        if value < 1:
            raise SystemExit(f"fnn train: {name} must be >= 1, got {value}")
    if not lr > 0:
        raise SystemExit(f"fnn train: --lr must be > 0, got {lr}")
    try:
        train, val, test = _load(args.dataset, args.model, args.seed, args.data_dir)
    except FileNotFoundError as e:
        raise SystemExit(f"fnn train: {e}") from None
    schedule = args.schedule or ("cosine" if args.model == "cnn" else "constant")
    rate = lr
    if schedule == "cosine":
        from fnn.optimizers import schedules
        rate = schedules.cosine(lr, epochs * (len(train[0]) // batch_size))
    try:
        optimizer = optimizers.from_name(opt_name, rate)
    except ValueError as e:
        raise SystemExit(f"fnn train: {e}") from None
    model = build_model(args.model, hidden, 10)
    key = jax.random.key(args.seed)
    init_key, train_key = jax.random.split(key)
    _, params = model.init(init_key, (-1,) + train[0].shape[1:])
    loss = losses.softmax_cross_entropy_with_integer_labels
    config = {"dataset": args.dataset, "model": args.model, "hidden": hidden, "optimizer": opt_name, "lr": lr,
              "schedule": schedule,
              "epochs": epochs, "batch_size": batch_size, "seed": args.seed,
              "train/val/test": [len(train[0]), len(val[0]), len(test[0])]}
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
    results = {"test_accuracy": result["accuracy"], "test_loss": result["loss"], "best_epoch": stopper.best_epoch,
               "best_val_accuracy": stopper.best, "epochs_run": len(history), "seconds": round(seconds, 2),
               "stop_reason": history.stop_reason}
    with open(os.path.join(out, "results.json"), "w") as f:
        json.dump(results, f, indent=1)
    print(f"test accuracy {result['accuracy']:.4f}  test loss {result['loss']:.4f}  (best epoch "
          f"{stopper.best_epoch}, {seconds:.1f} s); wrote history.json, curves.png, results.json to {out}")
    return 0
