"""The benchmark suite: one command, a markdown report on stdout and the raw numbers as JSON.

    python benchmarks/run.py [--quick] [--json benchmarks/results.json] [--only nielsen,cnn,optimizers,ensemble]

Every figure is measured side by side in one run, as the median of ``--repeats`` (>= 5) timed repeats after a
warm-up; compile time is reported apart. Runs on whatever JAX sees (CPU here; on a GPU machine the same command
times the GPU). Sections:

1. Nielsen's setup (784-30-10 sigmoid MLP, quadratic cost, SGD lr 3.0, 50,000 examples), mini-batch 10 and 100:
   fnn ``fit`` epoch vs a hand-written ``lax.scan`` epoch vs a per-step Python loop of jitted steps vs vectorised
   NumPy (Nielsen's ``network.py`` with matrix mini-batches), and the floating-point floor (the epoch's FLOPs over the
   matrix-multiply rate measured on this machine).
2. The Fashion-MNIST CNN (``benchmarks/bench_cnn.py``): fnn vs the best hand-written JAX vs PyTorch (when
   installed), peak RSS of each in its own process.
3. Each optimizer's step vs optax's on a 1M-parameter tree (``benchmarks/bench_optimizers.py``).
4. An ensemble of 32 small MLPs in one ``vmap``-ed program vs training them one by one.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import subprocess
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

from benchmarks import bench_train  # noqa: E402
from benchmarks.timing import machine, matmul_gflops, median_time  # noqa: E402

# --- 1. Nielsen -------------------------------------------------------------------------------------------------

def nielsen_flops(n: int, sizes=(784, 30, 10)) -> float:
    """FLOPs of one epoch: forward 2 d_in d_out per layer and example; backward 2 d_in d_out for dW and, above the
    first layer, 2 d_in d_out for the back-propagated delta (elementwise work ignored)."""
    pairs = list(zip(sizes[:-1], sizes[1:]))
    fwd = sum(2 * a * b for a, b in pairs)
    bwd = sum(2 * a * b for a, b in pairs) + sum(2 * a * b for a, b in pairs[1:])
    return float(n * (fwd + bwd))


def numpy_epoch(X, Y, batch: int, lr: float = 3.0):
    """Nielsen's network.py, vectorised over the mini-batch (rows are examples), float32. Returns ``run(seed)``."""
    rng = np.random.default_rng(0)
    W1, b1 = rng.normal(size=(784, 30)).astype(np.float32) / 28, np.zeros(30, np.float32)
    W2, b2 = rng.normal(size=(30, 10)).astype(np.float32) / 5.5, np.zeros(10, np.float32)
    Xn, Yn = np.asarray(X), np.asarray(Y)

    def sigmoid(z):
        return 1.0 / (1.0 + np.exp(-z))

    def run(seed):
        nonlocal W1, b1, W2, b2
        perm = np.random.default_rng(seed).permutation(len(Xn))
        for i in range(0, len(Xn) - batch + 1, batch):
            x, y = Xn[perm[i:i + batch]], Yn[perm[i:i + batch]]
            a1 = sigmoid(x @ W1 + b1)
            a2 = sigmoid(a1 @ W2 + b2)
            d2 = (a2 - y) * a2 * (1 - a2)           # BP1 for the quadratic cost
            d1 = (d2 @ W2.T) * a1 * (1 - a1)        # BP2
            W2 -= (lr / batch) * a1.T @ d2          # BP4 + the SGD step
            b2 -= (lr / batch) * d2.sum(0)
            W1 -= (lr / batch) * x.T @ d1
            b1 -= (lr / batch) * d1.sum(0)
        return None

    return run


def nielsen(X, Y, repeats: int, gflops: float) -> list[dict]:
    rows = []
    for batch in (10, 100):
        bench_train.BATCH = batch  # the reference epochs read the module's batch size at trace time
        res = bench_train.nielsen_epochs(X, Y, repeats)
        med_np, _, _ = median_time(lambda r=numpy_epoch(X, Y, batch): r(0), repeats=max(3, repeats // 2))
        res["NumPy, vectorised over the mini-batch"] = (med_np, med_np)
        floor = nielsen_flops(X.shape[0]) / (gflops * 1e9)
        fit_s = res["fit (scan)"][0]
        for name, (med, best) in res.items():
            rows.append({"batch": batch, "variant": name, "epoch_s": med, "min_s": best,
                         "vs_fit": med / fit_s, "vs_floor": med / floor})
        rows.append({"batch": batch, "variant": "floating-point floor (FLOPs / matmul rate)", "epoch_s": floor,
                     "min_s": floor, "vs_fit": floor / fit_s, "vs_floor": 1.0})
    bench_train.BATCH = 10
    return rows


# --- 4. Ensemble of 32 ------------------------------------------------------------------------------------------

def ensemble(repeats: int, k: int = 32) -> dict:
    """One epoch of k digits MLPs (64-32-10, batch 32, SGD): one vmapped program vs k calls of the same compiled
    single-model epoch (compile excluded from both)."""
    from fnn import data, losses, optimizers
    from fnn import layers as core
    from fnn.train import TrainState, make_epoch
    from fnn.train.ensembles import init_ensemble

    X, y = data.load_digits()
    X, y = jnp.asarray(X), jnp.asarray(y)
    model = core.mlp([32, 10], core.Relu)
    opt = optimizers.sgd(0.1)
    keys = jax.random.split(jax.random.key(0), k)
    params = init_ensemble(model.init, keys, (-1, 64))
    ts = TrainState(params, jax.vmap(opt.init)(params), None)
    epoch = make_epoch(model.apply, losses.softmax_cross_entropy_with_integer_labels, opt, 32, metrics=())
    one = jax.jit(epoch)
    many = jax.jit(jax.vmap(epoch, in_axes=(0, None, None, 0)))
    member = [jax.tree.map(lambda a, i=i: a[i], ts) for i in range(k)]

    def one_by_one():
        return [one(member[i], X, y, keys[i]) for i in range(k)]

    t_one, first_one, _ = median_time(lambda: one(member[0], X, y, keys[0]), repeats=repeats)
    t_seq, _, _ = median_time(one_by_one, repeats=repeats)
    t_vmap, first_vmap, _ = median_time(lambda: many(ts, X, y, keys), repeats=repeats)
    return {"k": k, "one_model_s": t_one, "one_by_one_s": t_seq, "vmap_s": t_vmap,
            "vmap_vs_one_model": t_vmap / t_one, "one_by_one_vs_vmap": t_seq / t_vmap,
            "compile_one_s": first_one - t_one, "compile_vmap_s": first_vmap - t_vmap}


# --- 2., 3. Delegated to their own scripts ---------------------------------------------------------------------

def cnn(steps: int, repeats: int, variants: list[str]) -> list[dict]:
    from benchmarks import bench_cnn
    rows = []
    for name in variants:
        if name == "PyTorch":
            try:
                import torch  # noqa: F401
            except ImportError:
                continue
        out = subprocess.run([sys.executable, bench_cnn.__file__, "--only", name, "--steps", str(steps),
                              "--repeats", str(repeats)], capture_output=True, text=True, cwd=ROOT)
        if out.returncode == 0:
            rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
        else:
            rows.append({"variant": name, "error": out.stderr[-500:]})
    return rows


def optimizers(repeats: int) -> str:
    from benchmarks import bench_optimizers
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        bench_optimizers.main(["--repeats", str(repeats)])
    return buf.getvalue()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="benchmarks/run.py", description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--quick", action="store_true", help="10,000 Nielsen examples and 5 CNN steps")
    ap.add_argument("--only", default="nielsen,cnn,optimizers,ensemble")
    ap.add_argument("--cnn-scan", action="store_true", help="also time the scanned CNN epochs (slow on the CPU)")
    ap.add_argument("--cnn-steps", type=int, help="CNN steps per timed repeat (default 10 on the CPU, 100 else)")
    ap.add_argument("--json", default=os.path.join(ROOT, "benchmarks", "results.json"))
    args = ap.parse_args(argv)
    parts = set(args.only.split(","))
    report = {"machine": machine(), "date": time.strftime("%Y-%m-%d"), "repeats": args.repeats}
    print(f"# fnn benchmarks\n\n{report['machine']}, {report['date']}; medians of {args.repeats} repeats after "
          f"warm-up\n")
    gflops = matmul_gflops()
    report["matmul_gflops"] = gflops
    print(f"float32 matrix multiply (1024^3): {gflops:.1f} GFLOP/s\n")

    if "nielsen" in parts:
        n = 10_000 if args.quick else 50_000
        X, Y, source = bench_train.load(n)
        rows = nielsen(jnp.asarray(X), jnp.asarray(Y), args.repeats, gflops)
        report["nielsen"] = {"data": source, "n": n, "rows": rows}
        print(f"## 1. Nielsen's 784-30-10 network, one epoch of {n} examples ({source})\n")
        print("| batch | variant | s / epoch (median) | min | / fit | / floor |\n|---|---|---|---|---|---|")
        for r in rows:
            print(f"| {r['batch']} | {r['variant']} | {r['epoch_s']:.3f} | {r['min_s']:.3f} | {r['vs_fit']:.2f}x "
                  f"| {r['vs_floor']:.1f}x |")
        print()
    if "cnn" in parts:
        variants = ["fnn fit (loop)", "JAX by hand (loop of jitted steps)", "PyTorch"]
        if args.cnn_scan or jax.default_backend() != "cpu":  # scanned convolutions are slow only on XLA:CPU
            variants += ["fnn fit (scan)", "JAX by hand (lax.scan epoch)"]
        steps = args.cnn_steps or (5 if args.quick else 10 if jax.default_backend() == "cpu" else 100)
        rows = cnn(steps, args.repeats, variants)
        report["cnn"] = rows
        ok = [r for r in rows if "error" not in r]
        best = min((r["step_ms"] for r in ok if r["variant"].startswith("JAX")), default=float("nan"))
        torch_ms = next((r["step_ms"] for r in ok if r["variant"] == "PyTorch"), float("nan"))
        print(f"## 2. Fashion-MNIST CNN (conv5x5-32, pool, conv5x5-64, pool, dense 1024, dense 10; Adam; batch "
              f"128), {steps} steps per repeat\n")
        print("| variant | device | ms / step | epoch (s) | compile (s) | / best JAX by hand | / PyTorch "
              "| peak RSS (MiB) | peak device memory (MiB) |\n|---|---|---|---|---|---|---|---|---|")
        for r in rows:
            if "error" in r:
                print(f"| {r['variant']} | | failed: {r['error'][-120:]!r} | | | | | | |")
                continue
            print(f"| {r['variant']} | {r.get('device', '')} | {r['step_ms']:.1f} | {r['epoch_s']:.1f} | "
                  f"{r['compile_s']:.1f} | "
                  f"{r['step_ms'] / best:.2f}x | {r['step_ms'] / torch_ms:.2f}x | {r['peak_rss_mib']:.0f} | "
                  f"{'n/a' if r.get('peak_device_mib') is None else format(r['peak_device_mib'], '.0f')} |")
        print()
    if "optimizers" in parts:
        text = optimizers(args.repeats)
        report["optimizers"] = text
        print("## 3. Optimizer step vs optax, 1M parameters\n\n" + text)
    if "ensemble" in parts:
        e = ensemble(args.repeats)
        report["ensemble"] = e
        print(f"## 4. Ensemble of {e['k']} digits MLPs, one epoch\n\n| variant | s / epoch | / one model |\n"
              f"|---|---|---|\n| one model | {e['one_model_s']:.3f} | 1.00x |\n"
              f"| {e['k']} models one by one | {e['one_by_one_s']:.3f} | {e['one_by_one_s'] / e['one_model_s']:.1f}x |"
              f"\n| {e['k']} models, one vmap-ed program | {e['vmap_s']:.3f} | {e['vmap_vs_one_model']:.1f}x |\n\n"
              f"compile: one model {e['compile_one_s']:.2f} s, vmap-ed {e['compile_vmap_s']:.2f} s\n")
    with open(args.json, "w") as f:
        json.dump(report, f, indent=1, default=float)
    print(f"raw numbers: {os.path.relpath(args.json, ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
