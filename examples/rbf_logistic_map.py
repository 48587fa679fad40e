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

The article's own protocol (``fnn.classic.rbf_article.logistic_protocol``), over seeds of the series' starting
point: centers at five exemplars of the series, units exp(-beta (x - c)^2) with beta = 5 (unnormalized) or 6
(normalized), one pass of projection operator training (nu = 0.3) through 100 training pairs, RMS on the next 100;
beside it, on the same series, least squares on the same units, k-means + least squares, fine-tuning, orthogonal
least squares centers, local-linear units and the ridge / smoothness-regularised solve. Then the dynamics
(``fnn.classic.rbf_dynamics``): Lyapunov exponents of the map and of the fitted model, the prediction horizon
against ln(0.1 / eps0) / lambda, and control of the map to its unstable fixed point 3/4 by a learned model.

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
from scipy import stats

from fnn import data
from fnn.classic import rbf
from fnn.classic import rbf_article as ra
from fnn.classic import rbf_dynamics as rd
from fnn.lab.stats import bootstrap_ci

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

    table = article_table(n_seeds=3 if quick else 20, fine_tune_steps=50 if quick else 1000)
    dyn = dynamics(quick=quick)
    for name in results:
        results[name]["protocol"] = table[name]
        results[name]["dynamics"] = dyn
    if out is not None:
        _plot(maps, Xtr, Ytr, os.path.join(out, "rbf_logistic_map.png"))
    return results


def _summary(values):
    """``(mean, std, t-interval low, high, bootstrap low, high)`` at 95 %, over seeds."""
    v = np.asarray(values, np.float64)
    half = stats.t.ppf(0.975, len(v) - 1) * v.std(ddof=1) / np.sqrt(len(v))
    _, blo, bhi = bootstrap_ci(v, np.mean, n_resamples=2000, seed=0)
    return float(v.mean()), float(v.std(ddof=1)), float(v.mean() - half), float(v.mean() + half), blo, bhi


def _seed_rows(x0, normalized, fine_tune_steps):
    """Test RMS of every method on the series from ``x0`` (100 train, 100 test pairs, K = 5 units)."""
    beta = 6.0 if normalized else 5.0
    row = {f"projection nu=0.3, {c} five exemplars": ra.logistic_protocol(x0, normalized=normalized, centers=c)
           for c in ("first", "spread")}
    first = row.pop("projection nu=0.3, first five exemplars")
    row = {"projection nu=0.3 (the protocol)": first["projection"], "least squares, same units": first["least_squares"],
           **{k: v["projection"] for k, v in row.items()}}
    X, Y = data.logistic_map_pairs(200, x0=float(x0))
    Xtr, Ytr, Xte, Yte = X[:100], jnp.asarray(Y[:100]), X[100:], Y[100:]
    p = rbf.fit_rbf(jax.random.key(0), Xtr, Ytr, K, normalized=normalized, bias=False)
    row["k-means + least squares"] = _rms(rbf.rbf_apply(p, Xte, normalized=normalized), Yte)
    p_ft, _ = rbf.fine_tune_rbf(p, Xtr, Ytr, normalized=normalized, steps=fine_tune_steps)
    row[f"k-means + LS + fine-tuning ({fine_tune_steps} steps)"] = _rms(rbf.rbf_apply(p_ft, Xte, normalized=normalized),
                                                                       Yte)
    idx = ra.ols_select(ra.gaussian_units(Xtr, Xtr, beta, normalized=normalized), Ytr[:, 0], K).indices
    C = Xtr[idx]
    R, Rte = (ra.gaussian_units(A, C, beta, normalized=normalized) for A in (Xtr, Xte))
    row["OLS centers + least squares"] = _rms(Rte @ rbf.solve_output_weights(R, Ytr), Yte)
    row["OLS centers + ridge 1e-5"] = _rms(Rte @ ra.regularized_weights(R, Ytr, 1e-5), Yte)
    if not normalized:
        Lc = ra.curvature_penalty(jnp.linspace(0.0, 1.0, 21)[:, None], C, beta)
        row["OLS centers + curvature 1e-6"] = _rms(Rte @ ra.regularized_weights(R, Ytr, 1e-6, Lc), Yte)
    else:
        theta = ra.fit_local_linear(Xtr, Ytr, C, beta)
        row["OLS centers, local-linear units"] = _rms(ra.local_linear_apply(theta, Xte, C, beta), Yte)
    return row


def article_table(n_seeds: int = 20, fine_tune_steps: int = 1000) -> dict:
    """The article's protocol and the comparisons over ``n_seeds`` starting points x(0) ~ U(0.05, 0.95)."""
    x0s = np.asarray(jax.random.uniform(jax.random.key(2026), (n_seeds,), minval=0.05, maxval=0.95))
    table = {}
    print(f"\nThe article's protocol over {n_seeds} starting points x(0): test RMS, mean +- std [95% t | bootstrap]")
    for name, normalized in (("unnormalized", False), ("normalized", True)):
        rows = [_seed_rows(x0, normalized, fine_tune_steps) for x0 in x0s]
        table[name] = {k: _summary([r[k] for r in rows]) for k in rows[0]}
        print(f"{name} (beta = {6 if normalized else 5}; article: {REFERENCE[name]})")
        for k, (m, sd, lo, hi, blo, bhi) in table[name].items():
            print(f"  {k:44s} {m:.3g} +- {sd:.2g}  [{lo:.3g}, {hi:.3g} | {blo:.3g}, {bhi:.3g}]")
    return table


def dynamics(quick: bool = False) -> dict:
    """Lyapunov exponents, the prediction horizon and control, printed; returns the numbers."""
    X, Y = data.logistic_map_pairs(200, x0=0.2)
    C = jnp.sort(X[:100, 0])[jnp.array([10, 30, 50, 70, 90])][:, None]
    W = rbf.solve_output_weights(ra.gaussian_units(X[:100], C, 6.0, normalized=True), jnp.asarray(Y[:100]))

    def F(x):
        return (ra.gaussian_units(jnp.reshape(x, (1, 1)), C, 6.0, normalized=True) @ W)[0, 0]

    eps0 = _rms(ra.gaussian_units(X[100:], C, 6.0, normalized=True) @ W, Y[100:])
    with jax.enable_x64(True):
        lam_map = float(rd.lyapunov_exponent(lambda x: 4.0 * x * (1.0 - x), 0.2, 5000 if quick else 100_000,
                                             burn=100))
    lam_model = float(rd.lyapunov_exponent(F, 0.2, 2000 if quick else 20_000, burn=100))
    starts = X[100:120 if quick else 200, 0]
    horizons = [rd.steps_to_error(rd.iterate_map(F, x0, 40), data.logistic_map(41, x0=float(x0))) for x0 in starts]
    Xc, Yc = rd.control_data(jax.random.key(0), 400)
    G = rd.fit_control_model(jax.random.key(1), Xc, Yc)
    xs, ds = rd.control_orbit(G, 0.2, 500, start=100)
    free, _ = rd.control_orbit(G, 0.2, 500, start=10 ** 6)
    out = {"lyapunov_map": lam_map, "lyapunov_model": lam_model, "eps0": eps0,
           "horizon_measured": float(np.mean(horizons)), "horizon_predicted": rd.predicted_horizon(eps0, lam_map),
           "control_final_error": float(jnp.max(jnp.abs(xs[-100:] - 0.75))),
           "control_max_delta": float(jnp.max(jnp.abs(ds))), "uncontrolled_std": float(jnp.std(free[-100:]))}
    print(f"\nLyapunov exponent: map {lam_map:.4f} (ln 2 = {np.log(2):.4f}), fitted normalized model {lam_model:.4f}")
    print(f"iterated prediction: |error| > 0.1 after {out['horizon_measured']:.1f} steps (mean of {len(starts)} "
          f"starts); ln(0.1 / eps0) / lambda = {out['horizon_predicted']:.1f} with eps0 = one-step RMS {eps0:.4f}")
    print(f"control to x* = 3/4 from t = 100: max |x - 3/4| over the last 100 steps {out['control_final_error']:.1e}"
          f" (uncontrolled std {out['uncontrolled_std']:.2f}), max |delta r| {out['control_max_delta']:.3f}")
    return out


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
