"""An RBF network learns the logistic map x(t+1) = 4 x(t) (1 - x(t)) from 100 exemplars of the chaotic series.

Data: the series from x(0) = 0.2 (``fnn.data.logistic_map_pairs``); the first 100 pairs (x(t), x(t+1)) train, the
next 100 test. Network: 5 Gaussian units, centers by k-means on the training inputs, one shared width
sigma = d_max / sqrt(2K) (``fnn.classic.rbf.rbf_widths``), unnormalized phi_k and normalized psi_k = phi_k / sum_j
phi_j.

Output weights three ways, RMS error on the 100 test exemplars for each variant:

* ``one-pass LMS``: the reference protocol, one on-line pass of the Widrow-Hoff rule over the 100 pairs, from 0
  (``fnn.classic.rbf.lms_output_weights``), at a few step sizes eta;
* ``least squares``: the closed-form pseudo-inverse solution (``fnn.classic.rbf.fit_rbf``), which the LMS pass only
  approaches;
* ``fine-tuned``: least squares, then Adam on centers, widths and weights together (``fnn.classic.rbf.fine_tune_rbf``).

The reference values (0.15 unnormalized, 0.084 normalized) come from the classic demonstration trained with one
pass through the training points. Then the fitted map is iterated from x(0) of the test segment,
x^(t+1) = F(x^(t)): since the map's Lyapunov exponent is ln 2, an initial error e grows like e 2^t and the
prediction decorrelates after about log2(1 / e) steps, however good the fit.

Run: ``python examples/rbf_logistic_map.py [--quick] [--out docs/img]``; writes ``rbf_logistic_map.png``.

References: Moody & Darken, Neural Computation 1, 1989; May, Nature 261, 1976; Lapedes & Farber, LA-UR-87-2662, 1987.
"""
from __future__ import annotations

import argparse
import os
import sys

import jax
import jax.numpy as jnp
import numpy as np

from fnn import data
from fnn.classic import rbf

REFERENCE = {"unnormalized": 0.15, "normalized": 0.084}
K = 5


def _rms(a, b):
    return float(np.sqrt(np.mean(np.square(np.asarray(a) - np.asarray(b)))))


def iterate_map(F, x0: float, steps: int) -> np.ndarray:
    """Free-running prediction ``x^(0) = x0``, ``x^(t+1) = F(x^(t))``; returns (steps + 1,)."""
    xs = [float(x0)]
    for _ in range(steps):
        xs.append(float(F(np.array([[xs[-1]]], np.float32))[0, 0]))
    return np.array(xs)


def run(quick: bool = False, out: str | None = "docs/img", seed: int = 0) -> dict:
    """Fit both variants, print the table, iterate the maps, save the figure; return the measured numbers."""
    X, Y = data.logistic_map_pairs(200, x0=0.2)
    Xtr, Ytr, Xte, Yte = X[:100], Y[:100], X[100:], Y[100:]
    key = jax.random.key(seed)
    etas = (0.3, 1.0) if quick else (0.1, 0.3, 1.0)
    steps = 200 if quick else 3000
    horizon = 30
    results, maps = {}, {}
    for name, normalized in (("unnormalized", False), ("normalized", True)):
        p = rbf.fit_rbf(key, Xtr, Ytr, K, centers="kmeans", width_rule="max_distance", normalized=normalized,
                        bias=False)
        Phi_tr = rbf.rbf_features(Xtr, p.centers, p.sigma, normalized=normalized)
        Phi_te = rbf.rbf_features(Xte, p.centers, p.sigma, normalized=normalized)
        lms = {eta: _rms(Phi_te @ rbf.lms_output_weights(Phi_tr, jnp.asarray(Ytr), eta=eta), Yte) for eta in etas}
        ls = _rms(rbf.rbf_apply(p, Xte, normalized=normalized), Yte)
        p_ft, _ = rbf.fine_tune_rbf(p, Xtr, Ytr, normalized=normalized, steps=steps)
        ft = _rms(rbf.rbf_apply(p_ft, Xte, normalized=normalized), Yte)
        F = jax.jit(lambda x, p=p_ft, n=normalized: rbf.rbf_apply(p, x, normalized=n))
        truth = data.logistic_map(horizon + 1, x0=float(Xte[0, 0]))
        pred = iterate_map(F, float(Xte[0, 0]), horizon)
        err = np.abs(pred - truth)
        diverged = int(np.argmax(err > 0.1)) if np.any(err > 0.1) else None
        results[name] = {"lms": lms, "least_squares": ls, "fine_tuned": ft, "reference": REFERENCE[name],
                         "steps_to_0.1_error": diverged, "centers": np.asarray(p.centers[:, 0]),
                         "sigma": float(p.sigma[0])}
        maps[name] = (p, p_ft, normalized, truth, pred)

    print(f"RBF network, K = {K} Gaussian units, 100 training / 100 test exemplars of x(t+1) = 4 x(t) (1 - x(t))")
    print(f"{'variant':14s} {'reference':>9s} " + " ".join(f"{'LMS eta=' + str(e):>11s}" for e in etas)
          + f" {'least sq.':>10s} {'fine-tuned':>10s} {'|err|>0.1 at step':>18s}")
    for name, r in results.items():
        print(f"{name:14s} {r['reference']:9.3f} " + " ".join(f"{r['lms'][e]:11.4f}" for e in etas)
              + f" {r['least_squares']:10.5f} {r['fine_tuned']:10.5f} {str(r['steps_to_0.1_error']):>18s}")

    if out is not None:
        _plot(maps, Xtr, Ytr, os.path.join(out, "rbf_logistic_map.png"))
    return results


def _plot(maps, Xtr, Ytr, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    grid = np.linspace(0, 1, 400, dtype=np.float32)[:, None]
    ax = axes[0]
    ax.plot(grid[:, 0], 4 * grid[:, 0] * (1 - grid[:, 0]), "k", lw=3, alpha=0.3, label="4x(1-x)")
    ax.scatter(Xtr[:, 0], Ytr[:, 0], s=8, c="k", label="training exemplars")
    for (name, (p, _, normalized, _, _)), c in zip(maps.items(), ("C0", "C1")):
        ax.plot(grid[:, 0], rbf.rbf_apply(p, grid, normalized=normalized)[:, 0], c, label=f"{name} (least squares)")
        Phi = rbf.rbf_features(grid, p.centers, p.sigma, normalized=normalized)
        axes[1].plot(grid[:, 0], Phi, c, alpha=0.8)
    ax.set(xlabel="x(t)", ylabel="x(t+1)", title="fitted map")
    ax.legend(fontsize=8)
    axes[1].set(xlabel="x", title="basis functions: unnormalized (C0), normalized (C1)")
    ax = axes[2]
    truth = next(iter(maps.values()))[3]
    ax.plot(truth, "k.-", label="true series")
    for (name, (_, _, _, _, pred)), c in zip(maps.items(), ("C0", "C1")):
        ax.plot(pred, c + ".--", label=f"iterated {name} fit (fine-tuned)")
    ax.set(xlabel="t", ylabel="x(t)", title="free-running prediction of the chaotic series")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer fine-tuning steps (for the test suite)")
    parser.add_argument("--out", default="docs/img", help="directory for the PNG")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    run(quick=args.quick, out=args.out, seed=args.seed)


if __name__ == "__main__":
    sys.exit(main())
