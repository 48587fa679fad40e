"""Ensembles, sweeps and parameter averages on the bundled digits, each in one compiled program per epoch.

1. ``fit`` one MLP with early stopping on validation accuracy (restore best) and a parameter moving average
   (``fnn.optimizers.transforms.average_params``, last in a chain):
   test accuracy of the last params vs the moving average.
2. ``fit_ensemble``: 8 MLPs from 8 keys with ``vmap``; the ensemble (mean softmax) vs the average member.
3. ``sweep``: 6 learning-rate x L2 settings trained side by side; the validation table.

Run: ``.venv/bin/python examples/ensemble_digits.py`` (about a minute on a 2-core CPU).
"""
import jax
import numpy as np
import optax

from fnn import data, losses
from fnn import layers as core
from fnn.optimizers import chain
from fnn.optimizers.transforms import average_params
from fnn.train import evaluate, evaluate_ensemble, fit, fit_ensemble, grid, init_ensemble, sweep
from fnn.train.callbacks import EarlyStopping

CE = losses.softmax_cross_entropy_with_integer_labels


def main():
    X, y = data.load_digits()
    (Xt, yt), (Xv, yv), (Xs, ys) = data.train_val_test_split(X, y, (0.6, 0.2, 0.2), key=jax.random.key(0),
                                                             stratify=True)
    stats = data.fit_standardizer(Xt)
    Xt, Xv, Xs = (data.standardize(a, stats) for a in (Xt, Xv, Xs))
    model = core.mlp([32, 10], core.Relu)
    _, params = model.init(jax.random.key(1), (-1, 64))

    print("1. one model, early stopping + parameter moving average")
    stopper = EarlyStopping("val_accuracy", patience=5)
    opt = chain(optax.sgd(0.05, momentum=0.9), average_params(0.99))   # the average: opt_state[-1].average
    p, opt_state, history = fit(model.apply, params, opt, CE, Xt, yt, epochs=40, batch_size=32, key=jax.random.key(2),
                                validation=(Xv, yv), callbacks=[stopper], verbose=False)
    print(f"   stopped after {len(history)} epochs ({history.stop_reason})")
    print(f"   test accuracy, best epoch's params: {evaluate(model.apply, p, CE, Xs, ys)['accuracy']:.4f}; "
          f"moving average at the end: {evaluate(model.apply, opt_state[-1].average, CE, Xs, ys)['accuracy']:.4f}")

    print("2. ensemble of 8 members")
    keys = jax.random.split(jax.random.key(3), 8)
    members = init_ensemble(model.init, keys, (-1, 64))
    members = fit_ensemble(model.apply, members, optax.sgd(0.05, momentum=0.9), CE, Xt, yt, epochs=15,
                           batch_size=32, keys=keys, verbose=False).params
    res = evaluate_ensemble(model.apply, members, Xs, ys)
    print(f"   members: {np.round(res['members'], 4).tolist()}")
    print(f"   mean member {res['mean_member']:.4f}, ensemble {res['ensemble']:.4f}, gain {res['gain']:+.4f}")

    print("3. sweep of learning rate x L2 strength")
    hp = grid(learning_rate=[0.01, 0.05, 0.2], l2=[0.0, 1e-3])
    swept = sweep(model.apply, params, lambda learning_rate: optax.sgd(learning_rate, momentum=0.9), CE, Xt, yt,
                  hparams=hp, epochs=15, batch_size=32, key=jax.random.key(4), validation=(Xv, yv), verbose=False)
    val = swept.history["val_accuracy"][-1]
    for k in np.argsort(val)[::-1]:
        print(f"   lr {float(hp['learning_rate'][k]):<5g} l2 {float(hp['l2'][k]):<6g} val accuracy {val[k]:.4f}")


if __name__ == "__main__":
    main()
