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
import time

from fnn.cli.args import non_negative_int, positive_int, widths
from fnn.cli.run_files import DEFAULTS, CommandError, data_mesh_for, defaults_table, input_shape
from fnn.cli.run_files import fail as _fail
from fnn.cli.run_files import load_splits as _load

__all__ = ["DEFAULTS", "build_model", "add_parser", "run", "load_model", "CommandError"]

#: the run's settings that a resume must repeat (``epochs`` may grow)
SAME_ON_RESUME = ("dataset", "model", "hidden", "optimizer", "lr", "schedule", "batch_size", "seed", "precision",
                  "augment")
#: the value a setting had in runs written before it existed
_BEFORE = {"precision": "float32"}


def build_model(name: str, hidden, num_classes: int, image_shape=None):
    """The models of ``fnn train``: an MLP with ReLU hidden layers, or a small CNN (``fnn.train.saved_runs``).

    CNN: ``Conv(c1, 3x3, SAME), ReLU, MaxPool(2x2, stride 2), Conv(c2, 3x3, SAME), ReLU, MaxPool(2x2, stride 2),
    Flatten, Dense(num_classes)`` with ``(c1, c2) = hidden[:2]`` (default 32, 64). Inputs are NHWC images.

    Args:
      name: ``"mlp"`` or ``"cnn"``.
      hidden: list of widths (MLP hidden layers / CNN channels).
      num_classes: outputs (logits).
      image_shape: unused (the layers infer it at ``init``); kept for callers that pass it.

    Returns:
      A ``fnn.layers.Layer``.
    """
    from fnn.train.saved_runs import MODEL_BUILDERS
    if name not in MODEL_BUILDERS:
        raise ValueError(f"fnn train: unknown model {name!r}; expected 'mlp' or 'cnn'")
    return MODEL_BUILDERS[name](hidden, num_classes)


def _per_dataset(key, fmt=str) -> str:
    return "default: " + ", ".join(f"{name} {fmt(d[key])}" for name, d in DEFAULTS.items())


def add_parser(sub):
    import argparse
    p = sub.add_parser("train", help="train a model and write history, curves and results to --out",
                       description="Train an MLP or a small CNN on digits, Fashion-MNIST or MNIST.",
                       epilog=defaults_table(), formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", choices=sorted(DEFAULTS), default="digits")
    p.add_argument("--model", choices=("mlp", "cnn"), default="mlp")
    p.add_argument("--hidden", type=widths, default=None,
                   help="hidden widths (MLP) or channels (CNN), comma-separated (MLP " + _per_dataset("hidden")
                        + "; CNN 32,64)")
    p.add_argument("--optimizer", default=None, help="an fnn rule (sgd, momentum, adam, ...) or optax:<name> ("
                   + _per_dataset("optimizer") + ")")
    p.add_argument("--lr", type=float, default=None, help="learning rate (" + _per_dataset("lr", "{:g}".format)
                   + ")")
    p.add_argument("--schedule", choices=("constant", "cosine"), default=None,
                   help="learning rate: constant, or cosine decay from --lr to 0 over all the training steps "
                        "(default: cosine for --model cnn, constant for mlp)")
    p.add_argument("--epochs", type=int, default=None, help=_per_dataset("epochs"))
    p.add_argument("--batch-size", type=int, default=None, help=_per_dataset("batch_size"))
    p.add_argument("--seed", type=non_negative_int, default=0)
    p.add_argument("--out", default=None, help="output folder (default runs/<dataset>-<model>)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its newest checkpoint")
    p.add_argument("--overwrite", action="store_true", help="delete the run already in --out and start afresh")
    p.add_argument("--patience", type=int, default=None, help="early stopping on validation accuracy")
    p.add_argument("--epoch-mode", choices=("auto", "scan", "loop"), default="auto")
    p.add_argument("--data-dir", default=None, help="folder with the IDX files (Fashion-MNIST/MNIST)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--find-lr", action="store_true",
                   help="run the learning-rate range test (fnn.train.find_lr, 1e-6 to 10 in 100 steps) on the "
                        "training split, write lr_finder.png and lr_finder.json to --out, print the suggested rate "
                        "and exit without training")
    p.add_argument("--precision", choices=("float32", "bfloat16"), default="float32",
                   help="compute in bfloat16 with float32 master weights (fnn.train.precision), default float32")
    p.add_argument("--devices", type=positive_int, default=None,
                   help="data parallelism over the first N devices (fnn.train.distributed.data_mesh); "
                        "--batch-size must divide by N (default: no mesh)")
    p.add_argument("--augment", action="store_true",
                   help="on-device augmentation for --model cnn (fnn.layers.RandomCrop/RandomFlip, training only): "
                        "random crops with 2-pixel padding (1 for 8x8 digits), and horizontal flips for "
                        "fashion-mnist only (digits are not mirror-symmetric)")
    p.add_argument("--tensorboard", action="store_true",
                   help="also write TensorBoard event files (scalars per epoch; fnn.train.TensorBoard, through "
                        "tensorboardX) to <out>/tensorboard; view with: tensorboard --logdir <out>")
    return p


def augmentation(dataset: str) -> dict:
    """``fnn train --augment``'s setting for a dataset: crop padding and flip probability."""
    return {"crop_padding": 1 if dataset == "digits" else 2, "flip": 0.5 if dataset == "fashion-mnist" else 0.0}


def _settings(args) -> dict:
    """The run's settings from the options and the dataset's defaults, checked (usage errors exit 2)."""
    d = DEFAULTS[args.dataset]
    cfg = {"dataset": args.dataset, "model": args.model,
           "hidden": args.hidden or ([32, 64] if args.model == "cnn" else widths(d["hidden"])),
           "optimizer": args.optimizer or d["optimizer"], "lr": d["lr"] if args.lr is None else args.lr,
           "schedule": args.schedule or ("cosine" if args.model == "cnn" else "constant"),
           "epochs": d["epochs"] if args.epochs is None else args.epochs,
           "batch_size": d["batch_size"] if args.batch_size is None else args.batch_size, "seed": args.seed,
           "precision": args.precision, "augment": augmentation(args.dataset) if args.augment else None}
    if args.augment and args.model != "cnn":
        _fail("fnn train: --augment crops and flips images: it needs --model cnn (the mlp sees flat vectors)", 2)
    for name, key in (("--epochs", "epochs"), ("--batch-size", "batch_size")):
        if cfg[key] < 1:
            _fail(f"fnn train: {name} must be >= 1, got {cfg[key]}", 2)
    if args.patience is not None and args.patience < 1:
        _fail(f"fnn train: --patience must be >= 1 (epochs without improvement), got {args.patience}", 2)
    if not (math.isfinite(cfg["lr"]) and cfg["lr"] > 0):
        _fail(f"fnn train: --lr must be > 0 and finite, got {cfg['lr']}", 2)
    if args.devices is not None:
        data_mesh_for(args.devices, cfg["batch_size"])   # checked before any data is loaded
        cfg["devices"] = args.devices
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
            shutil.rmtree(os.path.join(out, "tensorboard"), ignore_errors=True)
            for name in ("config.json", "results.json", "history.json", "curves.png"):
                if os.path.exists(os.path.join(out, name)):
                    os.unlink(os.path.join(out, name))
        return
    if not steps:
        _fail(f"fnn train: nothing to resume in {out!r}: expected the checkpoints of an earlier run in "
              f"{ckpt_dir!r}; start a new run without --resume", 1)
    if saved is not None:
        diffs = [f"{k} (saved {saved.get(k)!r}, now {cfg[k]!r})" for k in SAME_ON_RESUME
                 if saved.get(k, _BEFORE.get(k)) != cfg[k]]
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
    if not args.find_lr:
        _prepare_out(out, cfg, args)
    elif os.path.exists(out) and not os.path.isdir(out):
        _fail(f"fnn train: --out {out!r} is a file; expected a folder (it is created if missing)", 2)
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
    from fnn.cli.run_files import find_lr_command
    from fnn.debug.plots import plot_history
    from fnn.train import TensorBoard, callbacks, checkpoint, evaluate, fit, precision, saved_runs
    epochs, batch_size, lr = cfg["epochs"], cfg["batch_size"], cfg["lr"]
    rate = lr
    if cfg["schedule"] == "cosine":
        rate = optimizers.schedules.cosine(lr, epochs * (len(train[0]) // batch_size))
    try:
        optimizer = optimizers.from_name(cfg["optimizer"], rate)
    except ValueError as e:
        _fail(f"fnn train: --optimizer: {str(e).removeprefix('from_name: ')}", 2)
    spec = saved_runs.model_spec(args.model, cfg["hidden"], 10, input_shape(args.dataset, args.model),
                                 cfg["augment"])
    model = saved_runs.build_from_spec(spec)
    apply = model.apply
    if cfg["precision"] == "bfloat16":
        apply = precision.mixed_precision(model.apply, jax.numpy.bfloat16)
    init_key, train_key = jax.random.split(jax.random.key(args.seed))
    _, params = model.init(init_key, (-1,) + train[0].shape[1:])
    loss = losses.softmax_cross_entropy_with_integer_labels
    if args.find_lr:
        found = find_lr_command(apply, params, cfg["optimizer"], loss, train, batch_size, args.seed, out)
        print(f"fnn train --find-lr: suggested learning rate {found['suggested']:.3g} (the smoothed loss's minimum "
              f"/ 10; {found['steps_taken']} of {found['steps']} steps from {found['min_lr']:g} to "
              f"{found['max_lr']:g}); wrote lr_finder.png and lr_finder.json to {out}")
        return 0
    mesh = data_mesh_for(args.devices, batch_size)
    config = dict(cfg, **{"train/val/test": [len(train[0]), len(val[0]), len(test[0])], "model_spec": spec})
    print(f"fnn train: {json.dumps(config)}; writing to {out}")
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(config, f, indent=1)
    stopper = callbacks.EarlyStopping("val_accuracy", patience=args.patience or epochs + 1, restore_best=True)
    extra = [TensorBoard(os.path.join(out, "tensorboard"))] if args.tensorboard else []
    t0 = time.perf_counter()
    params, _, history = fit(apply, params, optimizer, loss, *train, epochs=epochs, batch_size=batch_size,
                             key=train_key, validation=val, callbacks=[*extra, stopper], learning_rate=rate,
                             epoch_mode=args.epoch_mode, progress=False if args.no_progress else None,
                             checkpoint_dir=os.path.join(out, "checkpoints"), resume=args.resume, mesh=mesh)
    seconds = time.perf_counter() - t0
    result = evaluate(apply, params, loss, *test)
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
    the epoch reported in ``results.json``. ``fnn.train.load_run`` gives the same and more (the apply function in
    the run's precision, the config).
    """
    from fnn.train import saved_runs
    run = saved_runs.load_run(out)
    model = saved_runs.build_from_spec(saved_runs.spec_of(run.config))
    return model, run.params, run.prepare
