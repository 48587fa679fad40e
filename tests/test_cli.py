"""The ``fnn`` command: ``fnn train`` on tiny settings (files, lines, resume), ``fnn info``, tool dispatch, errors."""
import json
import sys
import types

import jax
import numpy as np
import pytest

from fnn import cli, optimizers
from fnn.train import TrainState, checkpoint, checkpoint_tree
from fnn.train.callbacks import History

TINY = ["--hidden", "16", "--batch-size", "64", "--no-progress", "--optimizer", "sgd", "--lr", "0.2"]


def final_params(out, hidden=16):
    model = cli.build_model("mlp", [hidden], 10)
    _, params = model.init(jax.random.key(0), (-1, 64))
    opt_state = optimizers.from_name("sgd", 0.2).init(params)
    target = checkpoint_tree(TrainState(params, opt_state, None), 0, jax.random.key(0))
    return checkpoint.restore(out / "checkpoints", target)["train_state"].params


def test_fnn_train_writes_history_plots_and_results(tmp_path, capsys):
    out = tmp_path / "run"
    assert cli.main(["train", "--epochs", "2", "--out", str(out)] + TINY) == 0
    printed = capsys.readouterr().out
    assert "epoch 1/2  loss" in printed and "epoch 2/2  loss" in printed and "test accuracy" in printed
    history = History.load(out / "history.json")
    assert [r["epoch"] for r in history.records] == [1, 2]
    assert history.records[-1]["lr"] == pytest.approx(0.2)
    results = json.loads((out / "results.json").read_text())
    assert 0.0 <= results["test_accuracy"] <= 1.0 and results["epochs_run"] == 2
    with open(out / "curves.png", "rb") as f:
        assert f.read(4) == b"\x89PNG"
    config = json.loads((out / "config.json").read_text())
    assert config["train/val/test"] == [1259, 270, 268] and config["schedule"] == "constant"   # the MLP's default


def test_fnn_train_cosine_schedule_decays_the_rate_to_zero(tmp_path, capsys):
    """--schedule cosine: lr_t = lr (1 + cos(pi t / T)) / 2 over T = epochs * (1259 // 64) = 57 steps; the history
    records the rate after each epoch's last step (t = 19, 38, 57)."""
    out = tmp_path / "run"
    assert cli.main(["train", "--epochs", "3", "--out", str(out), "--schedule", "cosine"] + TINY) == 0
    lrs = History.load(out / "history.json")["lr"]
    want = [0.2 * (1 + np.cos(np.pi * t / 57)) / 2 for t in (19, 38, 57)]
    np.testing.assert_allclose(lrs, want, rtol=1e-6, atol=1e-9)
    assert want == pytest.approx([0.15, 0.05, 0.0], abs=1e-9)
    assert json.loads((out / "config.json").read_text())["schedule"] == "cosine"
    assert "epoch 3/3" in capsys.readouterr().out
    cnn = tmp_path / "cnn"   # the CNN's default schedule is the cosine (docs/training.md: 0.919 vs 0.915 mean)
    assert cli.main(["train", "--model", "cnn", "--epochs", "1", "--out", str(cnn)] + TINY) == 0
    assert json.loads((cnn / "config.json").read_text())["schedule"] == "cosine"
    assert History.load(cnn / "history.json")["lr"] == pytest.approx([0.0], abs=1e-9)


def test_fnn_train_resume_continues_to_the_same_parameters(tmp_path, capsys):
    a, b = tmp_path / "a", tmp_path / "b"
    assert cli.main(["train", "--epochs", "3", "--out", str(a)] + TINY) == 0
    assert cli.main(["train", "--epochs", "2", "--out", str(b)] + TINY) == 0
    capsys.readouterr()
    assert cli.main(["train", "--epochs", "3", "--out", str(b), "--resume"] + TINY) == 0
    printed = capsys.readouterr().out
    assert "epoch 3/3" in printed and "epoch 1/3" not in printed   # only the missing epoch ran
    for x, z in zip(jax.tree.leaves(final_params(a)), jax.tree.leaves(final_params(b)), strict=True):
        np.testing.assert_array_equal(x, z)
    ha, hb = History.load(a / "history.json"), History.load(b / "history.json")
    assert hb["epoch"] == [1, 2, 3] and hb["loss"] == ha["loss"] and hb["val_accuracy"] == ha["val_accuracy"]


@pytest.mark.parametrize("args, message", [
    (["--batch-size", "0"], "--batch-size must be >= 1"),
    (["--optimizer", "bogus"], "unknown optimizer 'bogus'"),
    (["--lr", "-1"], "--lr must be > 0"),
    (["--dataset", "fashion-mnist", "--data-dir", "/nonexistent-fnn-dir"], "fnn train: .*nonexistent-fnn-dir"),
])
def test_fnn_train_rejects_bad_options(tmp_path, args, message):
    with pytest.raises(SystemExit, match=message):
        cli.main(["train", "--out", str(tmp_path / "x")] + args)


def test_hidden_option_is_validated(capsys):
    with pytest.raises(SystemExit):
        cli.main(["train", "--hidden", "16,x"])
    assert "expected comma-separated positive widths" in capsys.readouterr().err


def test_fnn_info_prints_devices_and_versions(capsys):
    assert cli.main(["info"]) == 0
    printed = capsys.readouterr().out
    assert f"jax {jax.__version__}" in printed and f"devices: {jax.devices()[0].platform}:0" in printed


def test_compare_and_gradcheck_are_dispatched_lazily(monkeypatch, capsys):
    seen = []
    fake = types.ModuleType("fnn.cli.compare")
    fake.main = lambda argv: seen.append(argv) or 7
    monkeypatch.setitem(sys.modules, "fnn.cli.compare", fake)
    assert cli.main(["compare", "--problem", "xor", "-h"]) == 7
    assert seen == [["--problem", "xor", "-h"]]
    monkeypatch.setitem(sys.modules, "fnn.cli.gradcheck", None)   # the module is missing
    assert cli.main(["gradcheck", "x"]) == 2
    assert "has no fnn.cli.gradcheck module" in capsys.readouterr().err


def test_no_command_prints_help(capsys):
    assert cli.main([]) == 2
    assert "train" in capsys.readouterr().out
