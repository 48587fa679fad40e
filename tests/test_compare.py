"""fnn compare: the Python function, the command line, and the race (against closed forms)."""
import numpy as np
import pytest

from fnn.cli import compare as fc


def test_compare_function_trains_both_twins_identically(tmp_path):
    c = fc.compare("momentum", steps=15, hidden=8, out=str(tmp_path))
    assert c.loss_fnn.shape == c.loss_optax.shape == (16,)
    assert c.loss_fnn[-1] < 0.9 * c.loss_fnn[0]  # it trained
    np.testing.assert_allclose(c.loss_fnn, c.loss_optax, rtol=1e-5)
    assert c.max_param_diff < 1e-5
    assert c.step_time_fnn > 0 and c.step_time_optax > 0
    with open(c.png, "rb") as fh:
        assert fh.read(8) == b"\x89PNG\r\n\x1a\n"


def test_compare_unknown_rule():
    with pytest.raises(ValueError, match=r"compare: no optax twin for 'delta_bar_delta'; choose one of sgd,"):
        fc.compare("delta_bar_delta")


def test_race_matches_closed_forms():
    paths, png = fc.race(steps=30)
    assert png is None and set(paths) == {"sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adadelta", "adam"}
    # plain gradient descent on x^2/20 + y^2 contracts each coordinate by (1 - lr * curvature) per step
    t = np.arange(31)[:, None]
    expected = np.asarray([-7.0, 2.0]) * (1 - 0.45 * np.asarray([0.1, 2.0])) ** t
    np.testing.assert_allclose(paths["sgd"], expected, rtol=1e-4, atol=1e-6)
    for name, p in paths.items():
        assert p.shape == (31, 2)
        assert float(fc.bowl(p[-1])) < 0.5 * float(fc.bowl(p[0])), name


def test_main_race_and_compare_cli(tmp_path, capsys):
    assert fc.main(["--race", "--steps", "10", "--out", str(tmp_path)]) == 0
    assert (tmp_path / "race.png").stat().st_size > 10_000
    assert "| adam |" in capsys.readouterr().out
    assert fc.main(["sgd", "--steps", "5", "--hidden", "4", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "ratio fnn / optax" in out and (tmp_path / "compare-sgd.png").exists()
    assert fc.main(["nope", "--out", str(tmp_path)]) == 2
    assert "no optax twin for 'nope'" in capsys.readouterr().err
    # neither a rule nor --race: the default rule, adam (integrity issue: `fnn compare` alone used to exit 2)
    assert fc.main(["--steps", "3", "--out", str(tmp_path)]) == 0
    assert "| adam (lr=" in capsys.readouterr().out
