"""The Fashion-MNIST CNN: fnn's ``fit`` vs hand-written JAX vs PyTorch on the CPU, per training step.

Model (issue 7): two blocks of 5x5 conv (32 then 64 channels, SAME) + ReLU + 2x2 max-pool, dense 1024 + ReLU,
dense 10; softmax cross-entropy; Adam (lr 1e-3); batch 128. A full epoch is 468 steps; each variant runs
``--steps`` steps per repeat (default 20) and we report the median step time over ``--repeats`` repeats after a
warm-up, the first (compiling) run apart, and the extrapolated epoch time. Peak RSS of each variant is measured in
its own subprocess (``--rss``).

    python benchmarks/bench_cnn.py [--steps 20] [--repeats 5] [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from benchmarks.timing import machine, median_time, peak_rss_mib  # noqa: E402

BATCH, EPOCH_STEPS = 128, 60000 // 128


def load_data(n: int):
    try:
        from fnn.data import load_fashion_mnist
        X, y = load_fashion_mnist(split="train", flatten=False)
        X, y = X[:n], y[:n]
    except Exception:  # no files: the timing does not depend on the pixel values
        rng = np.random.default_rng(0)
        X, y = rng.random((n, 28, 28, 1), np.float32), rng.integers(0, 10, n).astype(np.int32)
    return np.asarray(X, np.float32), np.asarray(y, np.int32)


def fnn_model():
    from fnn import layers as L
    return L.serial(L.Conv(32, (5, 5), padding="SAME"), L.Relu, L.MaxPool((2, 2), (2, 2)),
                    L.Conv(64, (5, 5), padding="SAME"), L.Relu, L.MaxPool((2, 2), (2, 2)),
                    L.Flatten, L.Dense(1024), L.Relu, L.Dense(10))


def bench_fnn(X, y, steps, repeats, mode):
    """fnn.train.fit, one epoch of ``steps`` batches per repeat; epoch times from the history."""
    import jax

    from fnn import losses, optimizers
    from fnn.train import fit

    model = fnn_model()
    _, params = model.init(jax.random.key(0), (-1, 28, 28, 1))
    res = fit(model.apply, params, optimizers.adam(1e-3), losses.softmax_cross_entropy_with_integer_labels,
              X[:steps * BATCH], y[:steps * BATCH], epochs=repeats + 1, batch_size=BATCH, key=jax.random.key(1),
              epoch_mode=mode, verbose=False, progress=False, metrics=())
    t = res.history["time"]
    return float(np.median(t[1:])) / steps, t[0] - float(np.median(t[1:]))


def _jax_parts():
    import jax
    import jax.numpy as jnp
    import optax

    def conv(x, W, b):
        y = jax.lax.conv_general_dilated(x, W, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))
        return y + b

    def pool(x):
        return jax.lax.reduce_window(x, -jnp.inf, jax.lax.max, (1, 2, 2, 1), (1, 2, 2, 1), "VALID")

    def forward(p, x):
        x = pool(jax.nn.relu(conv(x, *p[0])))
        x = pool(jax.nn.relu(conv(x, *p[1])))
        x = jax.nn.relu(x.reshape(x.shape[0], -1) @ p[2][0] + p[2][1])
        return x @ p[3][0] + p[3][1]

    def loss(p, x, y):
        return optax.softmax_cross_entropy_with_integer_labels(forward(p, x), y).mean()

    k = jax.random.split(jax.random.key(0), 4)
    he = jax.nn.initializers.he_normal()
    params = [(he(k[0], (5, 5, 1, 32)), jnp.zeros(32)), (he(k[1], (5, 5, 32, 64)), jnp.zeros(64)),
              (he(k[2], (3136, 1024)), jnp.zeros(1024)), (he(k[3], (1024, 10)), jnp.zeros(10))]
    opt = optax.adam(1e-3)
    return jax, jnp, loss, params, opt


def bench_jax_loop(X, y, steps, repeats):
    """Hand-written: data on the device once, a Python loop of one jitted, donated step per batch."""
    jax, jnp, loss, params, opt = _jax_parts()
    import optax

    def step(p, s, x, yb):
        g = jax.grad(loss)(p, x, yb)
        u, s = opt.update(g, s, p)
        return optax.apply_updates(p, u), s

    step = jax.jit(step, donate_argnums=(0, 1))
    Xd, yd = jnp.asarray(X[:steps * BATCH]), jnp.asarray(y[:steps * BATCH])
    state = [params, opt.init(params)]

    def run():
        p, s = state
        for i in range(steps):
            p, s = step(p, s, Xd[i * BATCH:(i + 1) * BATCH], yd[i * BATCH:(i + 1) * BATCH])
        state[:] = [p, s]
        return p

    med, first, _ = median_time(run, repeats=repeats)
    return med / steps, first - med


def bench_jax_scan(X, y, steps, repeats):
    """Hand-written: the epoch as one lax.scan over the batches."""
    jax, jnp, loss, params, opt = _jax_parts()
    import optax

    def epoch(p, s, Xb, yb):
        def one(c, b):
            p, s = c
            g = jax.grad(loss)(p, *b)
            u, s = opt.update(g, s, p)
            return (optax.apply_updates(p, u), s), None
        return jax.lax.scan(one, (p, s), (Xb, yb))[0]

    epoch = jax.jit(epoch)
    Xb = jnp.asarray(X[:steps * BATCH]).reshape(steps, BATCH, 28, 28, 1)
    yb = jnp.asarray(y[:steps * BATCH]).reshape(steps, BATCH)
    s0 = opt.init(params)
    med, first, _ = median_time(lambda: epoch(params, s0, Xb, yb), repeats=repeats)
    return med / steps, first - med


def bench_torch(X, y, steps, repeats):
    """PyTorch (optional: only when torch is installed), same model, Adam, eager training loop; on the GPU when
    PyTorch sees one (data moved there once, cuDNN autotuning on), else on all CPU cores."""
    import torch
    from torch import nn

    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.set_num_threads(os.cpu_count())
    torch.backends.cudnn.benchmark = True
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 32, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
                        nn.Conv2d(32, 64, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                        nn.Linear(3136, 1024), nn.ReLU(), nn.Linear(1024, 10)).to(dev)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    Xt = torch.from_numpy(X[:steps * BATCH].transpose(0, 3, 1, 2).copy()).to(dev)
    yt = torch.from_numpy(y[:steps * BATCH].astype(np.int64)).to(dev)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    lossf = nn.CrossEntropyLoss()

    def run():
        for i in range(steps):
            opt.zero_grad()
            out = lossf(net(Xt[i * BATCH:(i + 1) * BATCH]), yt[i * BATCH:(i + 1) * BATCH])
            out.backward()
            opt.step()
        sync()
        return None

    t0 = time.perf_counter()
    run()
    first = time.perf_counter() - t0
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        run()
        times.append(time.perf_counter() - t0)
    med = float(np.median(times))
    return med / steps, first - med


VARIANTS = {
    "fnn fit (loop)": lambda X, y, s, r: bench_fnn(X, y, s, r, "loop"),
    "fnn fit (scan)": lambda X, y, s, r: bench_fnn(X, y, s, r, "scan"),
    "JAX by hand (loop of jitted steps)": bench_jax_loop,
    "JAX by hand (lax.scan epoch)": bench_jax_scan,
    "PyTorch": bench_torch,
}


def _device(name):
    if name == "PyTorch":
        import torch
        return torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"
    import jax
    return jax.devices()[0].device_kind


def _peak_device_mib(name):
    """Peak accelerator memory of this process (None on the CPU, where the peak RSS says it)."""
    if name == "PyTorch":
        import torch
        return torch.cuda.max_memory_allocated() / 2 ** 20 if torch.cuda.is_available() else None
    import jax
    stats = jax.devices()[0].memory_stats() if jax.default_backend() != "cpu" else None
    return stats["peak_bytes_in_use"] / 2 ** 20 if stats and "peak_bytes_in_use" in stats else None


def run_variant(name, steps, repeats):
    X, y = load_data(steps * BATCH)
    step_s, compile_s = VARIANTS[name](X, y, steps, repeats)
    return {"variant": name, "device": _device(name), "step_ms": 1e3 * step_s, "epoch_s": step_s * EPOCH_STEPS,
            "compile_s": max(compile_s, 0.0), "peak_rss_mib": peak_rss_mib(),
            "peak_device_mib": _peak_device_mib(name)}


def main(argv=None):
    ap = argparse.ArgumentParser(prog="bench_cnn")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--only", help="run one variant in this process and print its JSON (used for peak RSS)")
    ap.add_argument("--json")
    args = ap.parse_args(argv)
    if args.only:
        print(json.dumps(run_variant(args.only, args.steps, args.repeats)))
        return 0
    rows = []
    for name in VARIANTS:
        if name == "PyTorch":
            try:
                import torch  # noqa: F401
            except ImportError:
                print("PyTorch not installed: skipped (pip install torch for the comparison)")
                continue
        # Each variant in its own process: its peak RSS is its own, and no variant warms another's caches.
        out = subprocess.run([sys.executable, __file__, "--only", name, "--steps", str(args.steps),
                              "--repeats", str(args.repeats)], capture_output=True, text=True)
        if out.returncode:
            print(f"{name}: failed\n{out.stderr[-2000:]}")
            continue
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    best_jax = min(r["step_ms"] for r in rows if r["variant"].startswith("JAX"))
    torch_ms = next((r["step_ms"] for r in rows if r["variant"] == "PyTorch"), None)
    print(f"\nFashion-MNIST CNN, batch {BATCH}, {args.steps} steps x {args.repeats} repeats; {machine()}\n")
    print("| variant | ms / step | epoch (s, 468 steps) | compile (s) | vs best JAX by hand | vs PyTorch "
          "| peak RSS (MiB) |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        vt = f"{r['step_ms'] / torch_ms:.2f}x" if torch_ms else "n/a"
        print(f"| {r['variant']} | {r['step_ms']:.1f} | {r['epoch_s']:.1f} | {r['compile_s']:.1f} | "
              f"{r['step_ms'] / best_jax:.2f}x | {vt} | {r['peak_rss_mib']:.0f} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": machine(), "rows": rows}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
