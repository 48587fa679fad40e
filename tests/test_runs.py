"""Integrity issue, item 2: a checkpoint folder holds one run; its manifest decides what may resume there."""
import json

import jax
import numpy as np
import pytest

from fnn import layers, optimizers
from fnn.train import checkpoint, runs


def _manifest(lr=0.1, hidden=4, X=None, seed=0, epochs=3, batch_size=8):
    model = layers.serial(layers.Dense(hidden), layers.Relu, layers.Dense(2))
    _, params = model.init(jax.random.key(0), (-1, 3))
    opt = optimizers.momentum(lr, 0.9)
    X = np.ones((16, 3), np.float32) if X is None else X
    return runs.run_manifest(params, opt.init(params), opt, X, np.zeros(16, np.int32), key=jax.random.key(seed),
                             batch_size=batch_size, epochs=epochs)


def test_the_manifest_records_model_optimizer_data_seed():
    m = _manifest()
    assert m["params"][0] == ["[0].W", [3, 4], "float32"] and len(m["params"]) == 4
    assert m["optimizer"]["hyperparameters"] == {"learning_rate": 0.1, "mu": 0.9}
    assert m["data"]["X"]["shape"] == [16, 3] and len(m["data"]["X"]["sha256"]) == 64
    assert json.loads(json.dumps(m)) == m                       # JSON as written
    # each ingredient changes the manifest
    for other in (_manifest(lr=0.2), _manifest(hidden=5), _manifest(seed=1), _manifest(batch_size=4),
                  _manifest(X=np.full((16, 3), 2.0, np.float32))):
        assert runs.manifest_differences(m, other)
    assert runs.manifest_differences(m, _manifest(epochs=9)) == []   # epochs may grow on resume


def test_a_fresh_run_into_a_used_folder_is_refused_unless_overwritten(tmp_path):
    m = _manifest()
    assert runs.prepare_run_folder(tmp_path, m, resume=False) == 0
    checkpoint.save(tmp_path, 1, {"x": np.zeros(1)})
    with pytest.raises(runs.RunFolderError, match=r"already holds a run \(1 checkpoint\(s\), last epoch 1\); resume "
                                                  r"it, overwrite it"):
        runs.prepare_run_folder(tmp_path, _manifest(lr=0.3), resume=False)
    assert runs.read_manifest(tmp_path) == m                    # the refused run changed nothing
    assert runs.prepare_run_folder(tmp_path, _manifest(lr=0.3), resume=False, overwrite=True) == 0
    assert checkpoint.all_steps(tmp_path) == [] and runs.read_manifest(tmp_path) == _manifest(lr=0.3)


def test_resume_needs_a_run_and_the_same_run(tmp_path):
    m = _manifest()
    with pytest.raises(runs.RunFolderError, match=r"nothing to resume in .*: expected checkpoints"):
        runs.prepare_run_folder(tmp_path, m, resume=True)
    runs.prepare_run_folder(tmp_path, m, resume=False)
    checkpoint.save(tmp_path, 2, {"x": np.zeros(1)})
    with pytest.raises(runs.RunFolderError, match=r"holds a different run; it differs in "
                                                  r"optimizer.hyperparameters.learning_rate: saved 0.1, now 0.5"):
        runs.prepare_run_folder(tmp_path, _manifest(lr=0.5), resume=True)
    with pytest.raises(runs.RunFolderError, match=r"already trained 2 epochs, more than epochs=1"):
        runs.prepare_run_folder(tmp_path, _manifest(epochs=1), resume=True)
    assert runs.prepare_run_folder(tmp_path, _manifest(epochs=5), resume=True) == 2
    with pytest.raises(runs.RunFolderError, match=r"resume and overwrite both"):
        runs.prepare_run_folder(tmp_path, m, resume=True, overwrite=True)


def test_a_folder_that_is_a_file_is_refused(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(runs.RunFolderError, match=r"fit: the checkpoint folder .*file' is a file; pass a folder"):
        runs.prepare_run_folder(f, _manifest(), resume=False)


def test_describe_optimizer_reads_composed_rules_and_schedules():
    d = runs.describe_optimizer(optimizers.chain(optimizers.sgd(0.1), optimizers.sgd(0.2)))
    assert sorted(v for v in d["hyperparameters"].values() if isinstance(v, float)) == [0.1, 0.2]
    import optax
    assert runs.describe_optimizer(optax.adam(1e-3))["hyperparameters"] != \
        runs.describe_optimizer(optax.adam(2e-3))["hyperparameters"]
