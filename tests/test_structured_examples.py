"""The quick modes of the structured- and memory-model examples (issue 15) run in the suite, in-process.

Each example's full run is what docs/rbm.md, docs/recurrent.md, docs/ntm.md and docs/autoencoders.md report; here
each runs its smallest configuration end to end (data, training, evaluation, the printed table) and its numbers
are checked for what they must be whatever the training: probabilities and error rates in [0, 1], finite bits.
"""
import importlib.util
import math
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _example(name):
    spec = importlib.util.spec_from_file_location(f"{name}_example", os.path.join(ROOT, "examples", f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_ntm_copy_quick(capsys):
    ntm = _example("ntm_copy")
    results = ntm.main(["--quick"])
    out = capsys.readouterr().out
    assert "per-bit error" in out and re.search(r"^NTM \| [0-9.]+ \+- ", out, re.M), out
    for kind in ("NTM", "LSTM"):
        (r,) = results[kind]
        assert 0.0 <= r["errors"][3] <= 1.0 and r["sequences"] == 4
    # the LSTM baseline is sized to the NTM's parameter count: no other width H comes closer
    n, H = results["NTM"][0]["n_params"], ntm.lstm_size_for(results["NTM"][0]["n_params"])

    def count(h):                        # LSTM(h) on 9 input channels, then Dense(8)
        return 4 * h * (9 + h + 1) + h * 8 + 8

    assert results["LSTM"][0]["n_params"] == count(H)
    assert abs(count(H) - n) <= min(abs(count(H - 1) - n), abs(count(H + 1) - n))


def test_rbm_digits_quick(capsys):
    acc = _example("rbm_digits").run(quick=True, make_figures=False)
    assert set(acc) == {"RBM (DBN)", "autoencoder", "random init"}
    assert all(len(v) == 1 and 0.0 <= v[0] <= 1.0 for v in acc.values()), acc
    assert "RBM (DBN)" in capsys.readouterr().out


def test_dae_sampling_quick(capsys):
    rows = _example("dae_sampling").run(quick=True, out=None)
    assert len(rows) == 1
    assert "classifier test accuracy" in capsys.readouterr().out


def test_char_lm_quick(capsys, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["char_lm.py", "--quick"])
    _example("char_lm").main()
    out = capsys.readouterr().out
    rows = re.findall(r"^\s*(\d+)\s+(\d+)\s+\d+\s+([0-9.]+) \+-", out, re.M)
    assert [(int(a), int(b)) for a, b, _ in rows] == [(5, 5), (5, 10)], out
    # bits per character of a trained-for-one-epoch model: finite, and below log2(vocabulary) + a margin
    vocab = int(re.search(r"vocab (\d+)", out).group(1))
    assert all(0 < float(bpc) < math.log2(vocab) + 1 for _, _, bpc in rows), out
