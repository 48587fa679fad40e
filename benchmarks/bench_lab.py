"""The optimizer lab's two numbers: one vmapped program vs one ``fit`` call per run, and the quick suite's wall time.

    python benchmarks/bench_lab.py [--runs 48] [--rule adam] [--workload mlp_digits] [--suite] [--json FILE]

1. The same R runs (R/3 learning rates x 3 seeds of one rule on one workload, the default epochs, validation after
   every epoch) trained (a) as the lab does, one compiled program over all runs (``fnn/lab/programs.py``), and
   (b) as one would without it, one ``fnn.train.fit`` call per run (each a new optimizer, so each compiles its own
   epoch). Side by side in one process; the lab's compile time is reported apart and included in its total.
   The two give the same validation curves (checked here to float32 tolerance, and in tests/test_lab_runner.py).
2. ``--suite``: the wall time of ``fnn lab --suite quick`` with its defaults (7 rules, 4 workloads, budget 16 x 3
   tuning seeds, 10 evaluation seeds, timing pass, figures), run as the command line runs it.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import jax  # noqa: E402

from fnn.lab import search, workloads  # noqa: E402
from fnn.lab.programs import make_program, run_keys, run_program  # noqa: E402
from fnn.train import fit  # noqa: E402


def program_vs_fit(workload_name: str, rule: str, runs: int) -> dict:
    w = workloads.get(workload_name)
    factory, space = search.make_factory(rule), search.space_for(rule)
    n_configs = runs // 3
    hp = search.sample(space, n_configs, "random", seed=0)
    hp = {k: np.repeat(np.asarray(v, np.float32), 3) for k, v in hp.items()}
    seeds = np.tile(np.arange(3), n_configs)

    t0 = time.perf_counter()
    program = make_program(w, factory, epochs=w.epochs, example_hp=hp, n_runs=len(seeds))
    out, run_s = run_program(program, w, hp, seeds)
    lab_total = time.perf_counter() - t0

    keys = run_keys(0, seeds)
    t0 = time.perf_counter()
    curves = []
    for r in range(len(seeds)):
        params, state = w.init(keys[r])
        res = fit(w.apply, params, factory(**{k: float(v[r]) for k, v in hp.items()}), w.loss, *w.data["train"],
                  epochs=w.epochs, batch_size=w.batch_size, key=keys[r], state=state, validation=w.data["val"],
                  metrics=w.metrics, l2=w.l2, verbose=False, progress=False, epoch_mode="scan", scan_unroll=1)
        curves.append(res.history["val_loss"] + [np.nan] * (w.epochs - len(res.history["val_loss"])))
    fit_total = time.perf_counter() - t0
    lab_curves, fit_curves = out.curves["val_loss"], np.asarray(curves)
    ok = ~out.diverged
    # The batched and the single program round differently (float32, other fusion and reduction order); the first
    # epoch agrees to ~1e-4, and a chaotic run (a large learning rate) amplifies the difference over the epochs.
    agree = bool(np.allclose(lab_curves[ok, 0], fit_curves[ok, 0], rtol=1e-3))
    rel = np.abs(lab_curves[ok, -1] - fit_curves[ok, -1]) / np.abs(fit_curves[ok, -1])
    return {"workload": workload_name, "rule": rule, "runs": len(seeds), "epochs": w.epochs,
            "lab_compile_s": program.compile_s, "lab_run_s": run_s, "lab_total_s": lab_total,
            "fit_total_s": fit_total, "ratio_total": fit_total / lab_total, "ratio_run_only": fit_total / run_s,
            "curves_agree": agree, "final_rel_diff_median": float(np.median(rel)),
            "final_rel_diff_max": float(np.max(rel)), "diverged": int((~ok).sum())}


def quick_suite() -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        code = "import sys; from fnn.cli import main; sys.exit(main(sys.argv[1:]))"
        proc = subprocess.run([sys.executable, "-c", code, "lab", "--suite", "quick", "--out",
                               os.path.join(tmp, "lab")], cwd=ROOT, capture_output=True, text=True)
        wall = time.perf_counter() - t0
        if proc.returncode != 0:
            raise SystemExit(proc.stderr[-2000:])
        with open(os.path.join(tmp, "lab", "manifest.json")) as f:
            manifest = json.load(f)
    return {"wall_s": wall, "study_wall_s": manifest["wall_s"], "rules": manifest["rules"],
            "workloads": manifest["workloads"], "budget": manifest["budget"]}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=48)
    p.add_argument("--rule", default="adam")
    p.add_argument("--workload", default="mlp_digits")
    p.add_argument("--suite", action="store_true", help="also time fnn lab --suite quick")
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    device = jax.devices()[0]
    out = {"device": f"{device.platform} ({device.device_kind}), {os.cpu_count()} CPU cores",
           "jax": jax.__version__}
    r = out["program_vs_fit"] = program_vs_fit(args.workload, args.rule, args.runs)
    print(f"## One program vs one fit per run ({out['device']}, jax {out['jax']})\n")
    print(f"{r['runs']} runs of {r['rule']} on {r['workload']}, {r['epochs']} epochs, validation every epoch\n")
    print("| | seconds |\n|---|---|")
    print(f"| lab: compile | {r['lab_compile_s']:.2f} |\n| lab: run | {r['lab_run_s']:.2f} |")
    print(f"| lab: total (compile, init, run) | {r['lab_total_s']:.2f} |")
    print(f"| fit per run: total | {r['fit_total_s']:.2f} |")
    print(f"\nfit per run / lab: **{r['ratio_total']:.1f}x** in total, {r['ratio_run_only']:.1f}x against the lab's "
          f"run alone. First-epoch validation losses agree (rtol 1e-3): {r['curves_agree']}; final ones differ by "
          f"{r['final_rel_diff_median']:.1e} (median, relative; max {r['final_rel_diff_max']:.1e}: float32 rounding "
          f"amplified by chaotic runs); {r['diverged']} runs diverged")
    if args.suite:
        s = out["quick_suite"] = quick_suite()
        print(f"\n## fnn lab --suite quick\n\n{len(s['rules'])} rules x {len(s['workloads'])} workloads, budget "
              f"{s['budget']}: **{s['wall_s']:.0f} s** wall (the study itself {s['study_wall_s']:.0f} s)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
