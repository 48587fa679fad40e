"""Three lecture experiments reproduced with fnn; the lectures' numbers beside fnn's: docs/lecture_experiments.md.

1. ``--cv``: k-fold cross-validation over the degree d of a polynomial fitted by least squares to a small noisy
   sample of a quadratic (the model-selection slides' table): training error falls with d, the validation error is
   smallest near d = 2. ``fnn.train.selection``: ``grid_search`` over ``{"degree": [1..9]}``, each configuration
   scored by ``cross_validate`` on the same folds (``kfold_indices`` with one key).
2. ``--lr``: CS231n's babysitting logs, "learning rate too low / too high": an MLP with 50 hidden units trained
   with plain SGD by ``fnn.train.fit`` on digits at lr = 1e-6 (loss barely moves from ln 10 = 2.30), 1e-3 (falls)
   and 1e6 (explodes; ``fit`` stops at the first non-finite loss and keeps the parameters from before it), once
   with the lecture's preprocessing (pixels on the 0..255 scale, mean subtracted, weights 0.01 N(0, 1)) and once
   with fnn's defaults (pixels in [0, 1], Glorot weights).
3. ``--ensemble``: the gain of an ensemble of K = 2, 5, 10 independently initialised MLPs (``init_ensemble``,
   ``fit_ensemble``, ``evaluate_ensemble``) over its average member, paired per seed of the whole experiment (split,
   initialisations, batch orders), with a t and a bootstrap interval. ``examples/ensemble_digits.py`` measures one
   ensemble of 8 on one split; this repeats the measurement over seeds and ensemble sizes.

Run: ``python examples/lecture_experiments.py [--cv] [--lr] [--ensemble] [--quick] [--seeds N]`` (no flag: all
three; the full run takes about 2 minutes of CPU time, ``--quick`` a few seconds).
"""
from __future__ import annotations

import argparse
import math

import jax
import numpy as np
import optax
from scipy import stats

from fnn import data, losses, optimizers
from fnn import initializers as ini
from fnn import layers as core
from fnn.train import (
    TrainState,
    cross_validate,
    evaluate_ensemble,
    fit,
    fit_ensemble,
    format_table,
    grid_search,
    init_ensemble,
    make_train_step,
    rank_results,
)

CE = losses.softmax_cross_entropy_with_integer_labels


# ------------------------------------------------------------------------------------------------ 1. CV over degree
def quadratic_data(n, *, seed, noise=0.3):
    """``n`` points ``x ~ U[-1, 1]``, ``y = 0.5 + x - 2 x^2 + noise * N(0, 1)``, from ``default_rng(seed)``."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1.0, 1.0, n)
    return x, 0.5 + x - 2.0 * x ** 2 + noise * rng.standard_normal(n)


def least_squares_mse(degree):
    """``train_and_score(x_tr, y_tr, x_va, y_va)`` for ``cross_validate``: the least-squares polynomial of ``degree``
    (``min_w ||V w - y||^2``, ``V = [x^0 .. x^d]``) fitted on the training fold; its mean squared errors."""
    def train_and_score(x_tr, y_tr, x_va, y_va):
        w = np.linalg.lstsq(np.vander(x_tr, degree + 1, increasing=True), y_tr, rcond=None)[0]
        mse = [float(np.mean((np.vander(a, degree + 1, increasing=True) @ w - b) ** 2))
               for a, b in ((x_tr, y_tr), (x_va, y_va))]
        return {"score": mse[1], "fold_train": mse[0]}
    return train_and_score


def cv_by_degree(x, y, degrees, k, *, key):
    """``grid_search`` over the degree scored by ``k``-fold CV (the same folds for every degree): the results table
    (best first, ``mode="min"``) with metrics ``cv_std`` (over folds) and ``train`` (fit on all of ``x``)."""
    def score(config):
        cv = cross_validate(least_squares_mse(config["degree"]), x, y, k, key=key)
        train = least_squares_mse(config["degree"])(x, y, x, y)["score"]
        return {"score": cv["mean"], "cv_std": cv["std"], "train": train}
    return grid_search(score, {"degree": list(degrees)}, mode="min")


def one_standard_error_choice(results, k):
    """The smallest degree whose CV error is within one standard error (``cv_std / sqrt(k)``) of the best's (Hastie
    et al., "The Elements of Statistical Learning", 2nd ed., 2009, sec. 7.10, p. 244)."""
    best = results[0]
    limit = best["score"] + best["metrics"]["cv_std"] / math.sqrt(k)
    return min(r["config"]["degree"] for r in results if r["score"] <= limit)


def run_cv(quick=False, print_fn=print, n=30, k=5, degrees=range(1, 10)):
    """The table for data seed 0, the table averaged over many data sets, and how often each degree is chosen."""
    x, y = quadratic_data(n, seed=0)
    results = cv_by_degree(x, y, degrees, k, key=jax.random.key(0))
    print_fn(f"1. {k}-fold CV over the polynomial degree: n = {n} points of 0.5 + x - 2x^2 + 0.3 N(0,1)")
    print_fn("   data seed 0 (score: CV mean squared error; train: the fit on all n points)")
    print_fn(format_table(sorted(results, key=lambda r: r["config"]["degree"])))
    print_fn(f"   chosen degree (min CV error): {results[0]['config']['degree']}; one-standard-error rule: "
             f"{one_standard_error_choice(results, k)}")
    n_sets = 20 if quick else 200
    chosen, one_se, table = [], [], {d: [] for d in degrees}
    for s in range(n_sets):
        xs, ys = quadratic_data(n, seed=s)
        res = cv_by_degree(xs, ys, degrees, k, key=jax.random.key(s))
        chosen.append(res[0]["config"]["degree"])
        one_se.append(one_standard_error_choice(res, k))
        for r in res:
            table[r["config"]["degree"]].append((r["score"], r["metrics"]["train"]))
    rows = [{"config": {"degree": d}, "score": float(np.mean([v[0] for v in table[d]])),
             "metrics": {"sd": float(np.std([v[0] for v in table[d]])),
                         "train": float(np.mean([v[1] for v in table[d]])),
                         "min_cv": chosen.count(d), "one_se": one_se.count(d)}} for d in degrees]
    averaged = rank_results(rows, mode="min")
    print_fn(f"   mean over {n_sets} data sets (seeds 0..{n_sets - 1}); sd: over data sets; min_cv / one_se: "
             f"how many data sets choose the degree by each rule")
    print_fn(format_table(sorted(averaged, key=lambda r: r["config"]["degree"])))
    return {"results": results, "averaged": averaged, "chosen": chosen, "one_se": one_se}


# ------------------------------------------------------------------------------------------------ 2. learning rates
def digits_split(seed, fractions=(0.8, 0.0, 0.2)):
    """Stratified train/test split of the bundled digits (pixels in [0, 1])."""
    X, y = data.load_digits()
    train, _, test = data.train_val_test_split(X, y, fractions, key=jax.random.key(seed), stratify=True)
    return train, test


def step_losses(model, params, lr, X, y, batch_size, max_steps, *, key):
    """Per-step losses of plain SGD from ``params`` over consecutive batches of a shuffled ``X``, up to and
    including the first non-finite one (``make_train_step``'s guarded step)."""
    order = np.asarray(jax.random.permutation(key, X.shape[0]))
    step = make_train_step(model.apply, CE, optimizers.sgd(lr), metrics=(), donate=False)
    ts = TrainState(params, optimizers.sgd(lr).init(params), None)
    out = []
    for i in range(max_steps):
        b = order[i * batch_size:(i + 1) * batch_size]
        ts, st = step(ts, X[b], y[b], jax.random.fold_in(key, i))
        out.append(float(st["loss"]))
        if not bool(st["finite"]):
            break
    return out


def run_lr(quick=False, print_fn=print, rates=(1e-6, 1e-3, 3e-3, 1e6), seeds=(0, 1, 2)):
    """Loss logs at each rate, in the lecture's preprocessing and (full run) in fnn's default one.

    Quick: the lecture's preprocessing only, lr 1e-6, 1e-3 and 1e6, one seed, one epoch on 256 images."""
    (Xt, yt), (Xs, ys) = digits_split(0)
    epochs, batch_size = (1, 32) if quick else (10, 32)
    if quick:
        (Xt, yt), seeds, rates = (Xt[:256], yt[:256]), seeds[:1], (rates[0], rates[1], rates[-1])
    mean = Xt.mean(axis=0)
    settings = {"lecture": ((Xt - mean) * 255.0, (Xs - mean) * 255.0, ini.normal(1e-2), rates)}
    if not quick:
        settings["fnn default"] = (Xt, Xs, ini.glorot_normal(), (*rates[:3], 0.1, rates[-1]))
    out = {}
    for name, (A, B, W_init, lrs) in settings.items():
        model = core.mlp([50, 10], core.Relu, W_init=W_init)
        print_fn(f"2. {name} preprocessing: 64-50-10 ReLU MLP, plain SGD, batch {batch_size}, {len(A)} training "
                 f"images, {epochs} epochs, seeds {list(seeds)}")
        starts = [model.init(jax.random.key(seed), (-1, 64))[1] for seed in seeds]
        for lr in lrs:
            runs = []
            for seed, p0 in zip(seeds, starts):
                r = fit(model.apply, p0, optimizers.sgd(lr), CE, A, yt, epochs=epochs, batch_size=batch_size,
                        key=jax.random.key(100 + seed), validation=None if quick else (B, ys), verbose=False,
                        epoch_mode="loop" if quick else "auto")
                runs.append({"start": float(CE(model.apply(p0, A), yt)), "loss": r.history["loss"],
                             "val_accuracy": r.history["val_accuracy"] if not quick else [float("nan")],
                             "stop_reason": r.history.stop_reason, "params": r.params, "p0": p0})
            first, last = runs[0], [r["loss"][-1] for r in runs]
            change = [r["loss"][-1] - r["start"] for r in runs]
            val = [r["val_accuracy"][-1] for r in runs]
            print_fn(f"   lr {lr:g}: initial loss {first['start']:.4f}; epoch losses (seed {seeds[0]}): "
                     f"{' '.join(f'{v:.4g}' for v in first['loss'])}")
            print_fn(f"     over seeds: last epoch's loss {np.mean(last):.4g} (sd {np.std(last):.2g}), its change from "
                     f"the initial loss {np.mean(change):+.4g} (sd {np.std(change):.2g}), test accuracy "
                     f"{np.mean(val):.3f} (sd {np.std(val):.3f})")
            if first["stop_reason"] != "completed" and not quick:
                first["trace"] = step_losses(model, first["p0"], lr, A, yt, batch_size, 10, key=jax.random.key(7))
                print_fn(f"     fit: {first['stop_reason']}")
                print_fn("     per-step losses at this rate from the same start (make_train_step): "
                         + " ".join(f"{v:.3g}" for v in first["trace"]))
            out[(name, lr)] = runs
    return out


# ------------------------------------------------------------------------------------------------ 3. ensembles
def paired_interval(diffs, *, seed=0, level=0.95, n_boot=10_000):
    """Mean of paired differences with its t interval and a percentile bootstrap interval (``n_boot`` resamples)."""
    d = np.asarray(diffs, dtype=np.float64)
    m, n = float(d.mean()), d.size
    half = float(stats.t.ppf(0.5 + level / 2, n - 1) * d.std(ddof=1) / math.sqrt(n)) if n > 1 else float("nan")
    boot = np.random.default_rng(seed).choice(d, size=(n_boot, n)).mean(axis=1)
    lo, hi = np.quantile(boot, [(1 - level) / 2, (1 + level) / 2])
    return {"mean": m, "t": (m - half, m + half), "bootstrap": (float(lo), float(hi))}


def run_ensemble(quick=False, print_fn=print, n_seeds=10, sizes=(2, 5, 10), epochs=15):
    """For every seed: split, train max(sizes) members once, score the first K of them for each K."""
    X, y = data.load_digits()
    if quick:
        X, y, n_seeds, sizes, epochs = X[:256], y[:256], 1, (2,), 1
    model = core.mlp([32, 10], core.Relu)
    rows = {K: [] for K in sizes}
    print_fn(f"3. ensembles: 64-32-10 ReLU MLP, SGD 0.05 momentum 0.9, batch 32, {epochs} epochs, 50/50 stratified "
             f"split of {len(X)} digits; {n_seeds} seeds of the whole experiment")
    for seed in range(n_seeds):
        key = jax.random.key(1000 + seed)
        (Xt, yt), _, (Xs, ys) = data.train_val_test_split(X, y, (0.5, 0.0, 0.5), key=jax.random.fold_in(key, 0),
                                                          stratify=True)
        st = data.fit_standardizer(Xt)
        Xt, Xs = data.standardize(Xt, st), data.standardize(Xs, st)
        keys = jax.random.split(jax.random.fold_in(key, 1), max(sizes))
        members = init_ensemble(model.init, keys, (-1, 64))
        members = fit_ensemble(model.apply, members, optax.sgd(0.05, momentum=0.9), CE, Xt, yt, epochs=epochs,
                               batch_size=32, keys=keys, verbose=False).params
        for K in sizes:
            rows[K].append(evaluate_ensemble(model.apply, jax.tree.map(lambda a, K=K: a[:K], members), Xs, ys))
    out = {}
    print_fn(f"   {'K':>3} {'mean member':>12} {'ensemble':>9} {'gain':>8} {'95% t interval':>20} {'bootstrap':>20}")
    for K, res in rows.items():
        gains = [r["gain"] for r in res]
        ci = paired_interval(gains)
        member = [r["mean_member"] for r in res]
        ens = [r["ensemble"] for r in res]
        out[K] = {"mean_member": member, "ensemble": ens, "gain": gains, **ci}
        print_fn(f"   {K:>3} {np.mean(member):>12.4f} {np.mean(ens):>9.4f} {ci['mean']:>+8.4f} "
                 f"[{ci['t'][0]:+.4f}, {ci['t'][1]:+.4f}] [{ci['bootstrap'][0]:+.4f}, {ci['bootstrap'][1]:+.4f}]")
        print_fn(f"       per seed gain: {' '.join(f'{g:+.4f}' for g in gains)}; sd of the member mean over seeds "
                 f"{np.std(member, ddof=1) if len(member) > 1 else 0.0:.4f}")
    return out


def run(quick=False, which=("cv", "lr", "ensemble"), n_seeds=10, print_fn=print):
    """Run the chosen experiments; returns ``{name: results}``."""
    out = {}
    if "cv" in which:
        out["cv"] = run_cv(quick, print_fn)
    if "lr" in which:
        out["lr"] = run_lr(quick, print_fn)
    if "ensemble" in which:
        out["ensemble"] = run_ensemble(quick, print_fn, n_seeds=n_seeds)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cv", action="store_true", help="1. cross-validation over the polynomial degree")
    ap.add_argument("--lr", action="store_true", help="2. learning rate too low / good / too high")
    ap.add_argument("--ensemble", action="store_true", help="3. ensemble gain over the average member")
    ap.add_argument("--quick", action="store_true", help="tiny versions (a few seconds; used by the tests)")
    ap.add_argument("--seeds", type=int, default=10, help="seeds of the ensemble experiment")
    args = ap.parse_args(argv)
    which = [w for w in ("cv", "lr", "ensemble") if getattr(args, w)] or ["cv", "lr", "ensemble"]
    run(args.quick, which, args.seeds)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
