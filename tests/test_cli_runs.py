"""Keep the model a run reports and use it again: ``fnn evaluate``, ``fnn predict``, ``fnn.train.load_run``; and
``fnn train --find-lr``, ``--precision``, ``--devices``, ``--help``'s defaults. One tiny digits run is shared."""
import contextlib
import io
import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest

from fnn import cli, data, layers, losses
from fnn.cli.run_files import load_splits
from fnn.train import evaluate, load_run

TINY = ["--hidden", "8", "--batch-size", "64", "--no-progress", "--optimizer", "sgd", "--lr", "0.2"]


def fnn(*args):
    """``fnn ARGS`` in this process: ``(status, stdout, stderr)``; a user mistake's SystemExit gives its status."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            status = cli.main(list(args))
        except SystemExit as e:
            status = e.code
    return status, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "digits"
    status, _, err = fnn("train", "--epochs", "2", "--out", str(out), *TINY)
    assert status == 0, err
    return out


def raw_test_split():
    """The test split again, raw (independently of the CLI: the documented stratified 70/15/15 split, seed 0)."""
    X, y = data.load_digits()
    return data.train_val_test_split(X, y, (0.7, 0.15, 0.15), key=jax.random.key(0), stratify=True)[2]


def test_evaluate_reproduces_results_and_predict_agrees_with_load_run(run_dir, tmp_path):
    results = json.loads((run_dir / "results.json").read_text())
    status, printed, err = fnn("evaluate", str(run_dir), "--json")
    assert status == 0, err
    assert json.loads(printed)["accuracy"] == results["test_accuracy"]   # exactly
    assert json.loads(printed)["loss"] == results["test_loss"]
    status, printed, _ = fnn("evaluate", str(run_dir), "--split", "val")
    assert status == 0 and "val split (270 examples): accuracy" in printed

    run = load_run(run_dir)
    assert run.config["model_spec"] == {"name": "mlp", "hidden": [8], "num_classes": 10, "input_shape": [64]}
    Xraw, yraw = raw_test_split()
    _, _, (Xt, _), norm = load_splits("digits", "mlp", 0, None)
    np.testing.assert_allclose(np.asarray(run.prepare(Xraw.reshape(-1, 8, 8))), (Xraw - norm["mean"]) / norm["std"],
                               rtol=1e-6, atol=1e-6)
    logits = np.asarray(run.apply(run.params, run.prepare(Xraw)))
    assert np.mean(logits.argmax(-1) == yraw) == pytest.approx(results["test_accuracy"], abs=1e-6)
    own = load_run(run_dir, model=layers.mlp([8, 10], layers.Relu))   # a user's layer of the same structure
    np.testing.assert_array_equal(np.asarray(own.apply(own.params, own.prepare(Xraw))), logits)

    np.save(tmp_path / "x.npy", Xraw.reshape(-1, 8, 8))
    status, printed, err = fnn("predict", str(run_dir), str(tmp_path / "x.npy"), "--out", str(tmp_path / "p.npy"),
                               "--probabilities")
    assert status == 0 and "268 inputs" in printed, err
    np.testing.assert_array_equal(np.load(tmp_path / "p.npy"), logits.argmax(-1))
    probs = np.load(tmp_path / "p.probabilities.npy")
    z = np.exp(logits - logits.max(-1, keepdims=True))
    np.testing.assert_allclose(probs, z / z.sum(-1, keepdims=True), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(probs.sum(-1), 1.0, atol=1e-5)
    np.save(tmp_path / "counts.npy", np.rint(Xraw[:5] * 16).astype(np.uint8))   # raw pixel counts 0..16
    status, printed, _ = fnn("predict", str(run_dir), str(tmp_path / "counts.npy"))
    assert status == 0 and printed.split()[1:] == [str(c) for c in logits.argmax(-1)[:5]]
    np.save(tmp_path / "floats16.npy", Xraw[:5] * 16.0)   # sklearn's digits.data: floats 0..16, not [0, 1]
    status, _, err = fnn("predict", str(run_dir), str(tmp_path / "floats16.npy"))
    assert status == 1 and "holds float values from 0 to 16; expected float pixels in [0, 1]" in err
    assert "divide by 16" in err and "Traceback" not in err


@pytest.mark.parametrize("args, status, pattern", [
    (["evaluate", "{tmp}/missing"], 1, "fnn evaluate: expected a finished run in .*missing"),
    (["predict", "{run}", "{tmp}/bad.npy"], 1, r"expected raw inputs of shape \(n, 64\) or \(n, 8, 8\) .*got shape "
                                                r"\(3, 10\); pass inputs of the run's dataset"),
    (["predict", "{run}", "{run}/config.json"], 1, "is neither a .npy file nor an IDX file"),
    (["predict", "{run}", "{tmp}/bad.npy", "--out", "p.txt"], 2, "expected a file name ending in .npy or .csv"),
    (["train", "--devices", "{many}", "--out", "{tmp}/d"], 2, r"--devices \d+ asks for more devices than JAX sees "
                                                              r".*XLA_FLAGS=--xla_force_host_platform_device_count="),
])
def test_user_mistakes_end_in_one_line_and_a_status(run_dir, tmp_path, args, status, pattern):
    np.save(tmp_path / "bad.npy", np.zeros((3, 10), np.float32))
    args = [a.format(tmp=tmp_path, run=run_dir, many=jax.device_count() + 3) for a in args]
    got, _, err = fnn(*args)
    assert got == status and len(err.strip().splitlines()) == 1, err
    assert __import__("re").search(pattern, err), err


def test_find_lr_writes_the_sweep_and_help_lists_the_defaults(tmp_path):
    status, printed, err = fnn("train", "--find-lr", "--out", str(tmp_path), *TINY)
    assert status == 0, err
    record = json.loads((tmp_path / "lr_finder.json").read_text())
    assert record["min_lr"] / 10 <= record["suggested"] <= record["max_lr"] / 10
    assert record["suggested"] == pytest.approx(min(zip(record["smoothed"], record["rates"]))[1] / 10)
    assert f"suggested learning rate {record['suggested']:.3g}" in printed
    assert (tmp_path / "lr_finder.png").read_bytes()[:4] == b"\x89PNG" and not (tmp_path / "checkpoints").exists()
    status, printed, _ = fnn("train", "--help")
    assert status == 0
    assert "default: digits 30, fashion-mnist 15, mnist 10" in " ".join(printed.split())
    for row in (["digits", "128", "adam", "0.003", "30", "32"], ["mnist", "256,128", "adam", "0.001", "10", "128"]):
        assert any(line.split() == row for line in printed.splitlines()), printed


def test_bfloat16_on_two_devices_trains_records_and_reloads(tmp_path):
    """On two simulated CPU devices (a subprocess: the device count is fixed when JAX starts)."""
    env = dict(os.environ, XLA_FLAGS=os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=2")
    out = tmp_path / "bf"
    code = "import sys; from fnn.cli import main; sys.exit(main(sys.argv[1:]))"
    proc = subprocess.run([sys.executable, "-c", code, "train", "--epochs", "1", "--out", str(out), "--precision",
                           "bfloat16", "--devices", "2", *TINY], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    config = json.loads((out / "config.json").read_text())
    assert config["precision"] == "bfloat16" and config["devices"] == 2
    run = load_run(out)   # computes in bfloat16 as trained: the reported accuracy again, exactly
    _, _, (Xt, yt), _ = load_splits("digits", "mlp", 0, None)
    result = evaluate(run.apply, run.params, losses.softmax_cross_entropy_with_integer_labels, Xt, yt)
    assert float(result["accuracy"]) == json.loads((out / "results.json").read_text())["test_accuracy"]
    x = run.prepare(raw_test_split()[0][:4])
    assert run.apply(run.params, x).dtype == np.float32
    assert not np.array_equal(run.apply(run.params, x), layers.mlp([8, 10], layers.Relu).apply(run.params, x))


def test_runs_written_before_model_specs_still_load(run_dir, tmp_path):
    """A run from before ``model_spec``/``precision`` were saved is described from its dataset, model and hidden."""
    import shutil
    old = tmp_path / "old"
    shutil.copytree(run_dir, old)
    config = json.loads((old / "config.json").read_text())
    del config["model_spec"], config["precision"]
    (old / "config.json").write_text(json.dumps(config))
    x = raw_test_split()[0][:6]
    new_run, old_run = load_run(run_dir), load_run(old)
    np.testing.assert_array_equal(np.asarray(old_run.apply(old_run.params, old_run.prepare(x))),
                                  np.asarray(new_run.apply(new_run.params, new_run.prepare(x))))
    from fnn.cli.train import load_model
    model, params, prepare = load_model(old)
    np.testing.assert_array_equal(np.asarray(model.apply(params, prepare(x))),
                                  np.asarray(new_run.apply(new_run.params, new_run.prepare(x))))


def test_augment_and_tensorboard_switches(tmp_path):
    """``--augment`` puts RandomCrop in front of the CNN (training only: evaluation reproduces results.json), and
    ``--tensorboard`` writes event files that TensorBoard's reader gives back equal to the history."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    out = tmp_path / "cnn"
    status, _, err = fnn("train", "--model", "cnn", "--epochs", "1", "--out", str(out), "--augment", "--tensorboard",
                         "--hidden", "4,4", "--batch-size", "64", "--no-progress")
    assert status == 0, err
    run = load_run(out)
    assert run.config["model_spec"]["augment"] == {"crop_padding": 1, "flip": 0.0}
    status, printed, err = fnn("evaluate", str(out), "--json")
    assert json.loads(printed)["accuracy"] == json.loads((out / "results.json").read_text())["test_accuracy"]
    x = run.prepare(raw_test_split()[0][:8])
    np.testing.assert_array_equal(run.apply(run.params, x), run.apply(run.params, x, train=False))
    assert not np.array_equal(run.apply(run.params, x, key=jax.random.key(3), train=True),
                              run.apply(run.params, x, train=False))   # crops act in training
    acc = EventAccumulator(str(out / "tensorboard"))
    acc.Reload()
    val = [r["val_accuracy"] for r in json.loads((out / "history.json").read_text())["records"]]
    assert [(e.step, e.value) for e in acc.Scalars("val_accuracy")] == [(1, pytest.approx(val[0], abs=1e-7))]
    status, _, err = fnn("train", "--augment", "--out", str(tmp_path / "mlp"))
    assert status == 2 and "--augment crops and flips images: it needs --model cnn" in err


def write_idx(path, images):
    """An IDX file of uint8 images written by hand (the format: 0, 0, type 0x08, rank, big-endian int32 sizes)."""
    head = bytes([0, 0, 0x08, images.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in images.shape)
    path.write_bytes(head + images.astype(np.uint8).tobytes())


def test_evaluate_and_predict_as_commands_read_idx_and_show_no_traceback(run_dir, tmp_path):
    """The commands as a user runs them (separate processes): evaluate's --json equals results.json; predict on an IDX
    file of raw pixel counts equals load_run's argmax; a user mistake is one line on stderr."""
    code = "import sys; from fnn.cli import main; sys.exit(main(sys.argv[1:]))"

    def command(*args):
        return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=300)

    proc = command("evaluate", str(run_dir), "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["accuracy"] == json.loads((run_dir / "results.json").read_text())["test_accuracy"]
    counts = np.rint(raw_test_split()[0][:20] * 16).reshape(-1, 8, 8)
    write_idx(tmp_path / "digits-idx3-ubyte", counts)
    proc = command("predict", str(run_dir), str(tmp_path / "digits-idx3-ubyte"), "--out", str(tmp_path / "p.csv"))
    assert proc.returncode == 0, proc.stderr
    run = load_run(run_dir)
    want = np.asarray(run.apply(run.params, run.prepare(counts / 16.0))).argmax(-1)
    got = np.loadtxt(tmp_path / "p.csv", delimiter=",", skiprows=1, ndmin=2)[:, 0].astype(int)
    np.testing.assert_array_equal(got, want)
    np.save(tmp_path / "floats16.npy", counts * 1.0)
    proc = command("predict", str(run_dir), str(tmp_path / "floats16.npy"))
    assert proc.returncode == 1 and "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
