"""examples/xor.py: the perceptron learns AND/OR/NAND but cycles on XOR; the 2-2-1 sigmoid network learns XOR."""
import importlib.util
import pathlib

import numpy as np

PATH = pathlib.Path(__file__).resolve().parents[1] / "examples" / "xor.py"


def _load():
    spec = importlib.util.spec_from_file_location("xor_example", PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_xor_example(capsys):
    xor = _load()
    res = xor.main(seed=0, verbose=True)
    printed = capsys.readouterr().out

    for gate in ("AND", "OR", "NAND"):
        r = res["perceptron"][gate]
        assert r["converged"] and r["correct"], gate
        # Independent check: the learned line separates the truth table.
        z = xor.INPUTS @ r["w"] + r["b"]
        np.testing.assert_array_equal((z > 0).astype(float), xor.GATES[gate])
    bad = res["perceptron"]["XOR"]
    assert not bad["converged"] and not bad["correct"] and bad["cycle"] is not None
    assert bad["epochs"] < 50  # the cycle is detected long before the epoch limit

    net = res["network"]
    assert net["correct"] and net["final_loss"] < 0.05
    np.testing.assert_array_equal(np.round(net["outputs"]), [0, 1, 1, 0])

    assert "XOR: does not converge: the weights cycle" in printed
    assert "AND: converged after" in printed and "2-2-1 sigmoid network on XOR" in printed
    assert printed.count("x1 x2 | target | output") == 5  # four perceptron tables and the network's


def test_perceptron_rule_by_hand():
    """One epoch of Rosenblatt's rule on OR from w = 0, worked by hand."""
    xor = _load()
    r = xor.train_perceptron(xor.INPUTS, xor.GATES["OR"], max_epochs=1)
    # (0,0): o=0 ok. (0,1): o=0, y=1 -> w=(0,1), b=1. (1,0): z=1 -> o=1 ok. (1,1): o=1 ok.
    np.testing.assert_array_equal(r["w"], [0.0, 1.0])
    assert r["b"] == 1.0 and not r["converged"]
