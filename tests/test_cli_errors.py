"""Integrity issue, the command line: every user mistake ends with one clear line on stderr and exit status 2
(usage) or 1 (data or run problem), never a traceback; run as the console command, in a subprocess."""
import gzip
import json
import subprocess
import sys

import numpy as np
import pytest

TINY = ["--hidden", "8", "--batch-size", "128", "--no-progress", "--optimizer", "sgd", "--lr", "0.2"]


def fnn(*args, cwd=None):
    """Run ``fnn ARGS`` as the installed console command would (``python -m`` of the same entry point)."""
    code = "import sys; from fnn.cli import main; sys.exit(main(sys.argv[1:]))"
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, cwd=cwd,
                          timeout=300)


def assert_user_error(proc, status, pattern):
    import re
    assert proc.returncode == status, (proc.returncode, proc.stderr)
    assert "Traceback" not in proc.stderr, proc.stderr
    assert re.search(pattern, proc.stderr), proc.stderr


@pytest.mark.parametrize("args, status, pattern", [
    (["--patience", "-1"], 2, r"--patience must be >= 1"),
    (["--lr", "inf"], 2, r"--lr must be > 0 and finite, got inf"),
    (["--lr", "nan"], 2, r"--lr must be > 0 and finite, got nan"),
    (["--batch-size", "5000"], 2, r"--batch-size 5000 is larger than the training split \(1259 examples\)"),
    (["--epochs", "0"], 2, r"--epochs must be >= 1, got 0"),
    (["--seed", "-3"], 2, r"argument --seed: expected a whole number >= 0, got -3"),
    (["--optimizer", "adamm"], 2, r"unknown optimizer 'adamm'"),
    (["--resume"], 1, r"nothing to resume in .*: expected the checkpoints of an earlier run"),
])
def test_bad_options_end_in_one_line_and_a_status(tmp_path, args, status, pattern):
    assert_user_error(fnn("train", "--out", str(tmp_path / "run"), *TINY, *args), status, pattern)


def test_out_that_is_a_file_is_refused_before_training(tmp_path):
    out = tmp_path / "a-file"
    out.write_text("not a folder")
    assert_user_error(fnn("train", "--out", str(out), *TINY), 2, r"--out .*a-file' is a file; expected a folder")


def test_a_truncated_idx_file_is_a_data_error(tmp_path):
    data = tmp_path / "idx"
    data.mkdir()
    images = np.zeros((10, 28, 28), np.uint8)
    header = bytes([0, 0, 8, 3]) + (10).to_bytes(4, "big") + (28).to_bytes(4, "big") + (28).to_bytes(4, "big")
    for split, n in (("train", 10), ("t10k", 10)):
        with gzip.open(data / f"{split}-images-idx3-ubyte.gz", "wb") as f:
            f.write((header + images.tobytes())[:500])                      # cut short
        with gzip.open(data / f"{split}-labels-idx1-ubyte.gz", "wb") as f:
            f.write(bytes([0, 0, 8, 1]) + n.to_bytes(4, "big") + bytes(n))
    proc = fnn("train", "--dataset", "fashion-mnist", "--data-dir", str(data), "--out", str(tmp_path / "r"), *TINY)
    assert_user_error(proc, 1, r"fnn train: .*train-images-idx3-ubyte")


def test_one_folder_one_run_fresh_resume_overwrite(tmp_path):
    out = tmp_path / "run"
    first = fnn("train", "--epochs", "2", "--out", str(out), *TINY)
    assert first.returncode == 0, first.stderr
    config = (out / "config.json").read_text()
    # a fresh run into the used folder is refused, and leaves the run as it was
    assert_user_error(fnn("train", "--epochs", "2", "--out", str(out), *TINY), 1,
                      r"already holds a run \(2 checkpoint\(s\)\); continue it with --resume, replace it with "
                      r"--overwrite")
    # a resume with other settings names each difference and overwrites nothing
    results = (out / "results.json").read_text()
    other = [a if a != "8" else "16" for a in TINY]
    assert_user_error(fnn("train", "--epochs", "3", "--out", str(out), "--resume", *other), 1,
                      r"--resume with other settings .*hidden \(saved \[8\], now \[16\]\)")
    assert_user_error(fnn("train", "--epochs", "1", "--out", str(out), "--resume", *TINY), 1,
                      r"has trained 2 epochs, more than --epochs 1; ask for at least 2")
    assert (out / "config.json").read_text() == config and (out / "results.json").read_text() == results
    # --overwrite starts afresh: the old checkpoints are gone
    again = fnn("train", "--epochs", "1", "--out", str(out), "--overwrite", *TINY)
    assert again.returncode == 0, again.stderr
    from fnn.train import checkpoint
    assert checkpoint.all_steps(out / "checkpoints") == [1]
    assert json.loads((out / "config.json").read_text())["epochs"] == 1


def test_the_reported_model_is_kept_and_reloads_to_the_reported_accuracy(tmp_path):
    import jax.numpy as jnp

    from fnn import data
    from fnn.cli.train import _load, load_model
    out = tmp_path / "run"
    proc = fnn("train", "--epochs", "3", "--out", str(out), *TINY)
    assert proc.returncode == 0, proc.stderr
    results = json.loads((out / "results.json").read_text())
    model, params, prepare = load_model(out)
    X, y = data.load_digits()
    _, _, (Xt, yt), _ = _load("digits", "mlp", 0, None)
    # the test split again, raw: standardised by the kept statistics it must equal what fnn train evaluated
    _, _, (Xraw, yraw) = data.train_val_test_split(X, y, (0.7, 0.15, 0.15), key=__import__("jax").random.key(0),
                                                   stratify=True)
    np.testing.assert_allclose(np.asarray(prepare(Xraw)), Xt, rtol=1e-6, atol=1e-6)
    accuracy = float(jnp.mean(jnp.argmax(model.apply(params, prepare(Xraw)), -1) == yraw))
    assert accuracy == pytest.approx(results["test_accuracy"], abs=1e-6)


def test_compare_without_arguments_runs_the_default_rule(tmp_path):
    proc = fnn("compare", "--steps", "3", "--out", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert "adam" in proc.stdout
    assert_user_error(fnn("compare", "--lr", "inf"), 2, r"argument --lr: expected a finite positive number")


def test_compare_out_file_and_usage_errors_are_one_line(tmp_path):
    f = tmp_path / "afile"
    f.write_text("x")
    assert_user_error(fnn("compare", "--steps", "2", "--out", str(f)), 2,
                      r"--out .*afile' is a file; expected a folder")
    proc = fnn("compare", "--steps", "0")
    assert_user_error(proc, 2, r"^fnn compare: argument --steps: expected a whole number >= 1, got 0; see fnn compare "
                               r"--help\n$")
    assert_user_error(fnn("train", "--hidden", "64,,3"), 2, r"^fnn train: argument --hidden: expected comma-separated")


def test_resuming_a_finished_run_leaves_its_results(tmp_path):
    out = tmp_path / "run"
    assert fnn("train", "--epochs", "1", "--out", str(out), *TINY).returncode == 0
    results = (out / "results.json").read_text()
    assert_user_error(fnn("train", "--epochs", "1", "--out", str(out), "--resume", *TINY), 1,
                      r"has already trained its 1 epochs: nothing to resume")
    assert (out / "results.json").read_text() == results
