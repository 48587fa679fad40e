"""Workloads: what the lab trains each optimizer rule on, as one record per problem, and the built-in registry.

The contract (``Workload``): ``init(key) -> (params, state)`` gives a seed's starting point (``state`` is ``None``,
or a pytree the model takes as ``state=``: BatchNorm statistics, or per-seed constants such as a rotated Hessian);
``apply(params, x, *, key=None, train=False) -> outputs`` is fnn's model contract (with a state:
``apply(params, x, *, state, key=None, train=False) -> (outputs, state)``); ``loss(outputs, y) -> scalar`` is the
mean over the batch. The runner trains with ``fnn.train.engine.make_epoch(w.apply, w.loss, ..., w.batch_size,
metrics=w.metrics, l2=w.l2)`` and evaluates ``w.loss`` and ``w.metrics`` on the validation split after every epoch.
``init`` must be traceable: the runner calls ``jax.vmap(w.init)(keys)``.

A *function* workload (``kind="function"``) minimises a deterministic ``f(params)``: its train split is
``steps_per_eval`` placeholder rows with ``batch_size`` 1, so one epoch is ``steps_per_eval`` steps on the full
objective, and its val/test splits are one placeholder row, so an evaluation is ``f(params)``.

Add your own with ``from_model`` (an fnn layer and data splits) or ``from_function`` (an objective and a start
sampler); ``get(name, **options)`` builds a registered one; ``SUITES`` names the standard sets.
"""
from __future__ import annotations

import types
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from fnn import layers, losses
from fnn.data import numpy_rng
from fnn.lab import problems
from fnn.metrics import METRICS
from fnn.train import engine

__all__ = ["Workload", "from_model", "from_function", "get", "WORKLOADS", "SUITES", "noisy_quadratic", "rosenbrock",
           "rastrigin", "saddle", "logreg_digits", "mlp_digits", "autoencoder_digits", "gru_digits", "fmnist_mlp",
           "fmnist_cnn"]

SPLITS = ("train", "val", "test")


class Workload(NamedTuple):
    """One problem of the lab (the contract is in this module's docstring)."""
    name: str
    description: str          # one line, printed in the report
    init: Callable            # init(key) -> (params, state)
    apply: Callable           # fnn's model contract; with a state it takes state= and returns (outputs, state)
    loss: Callable            # loss(outputs, y) -> scalar, the mean over the batch
    data: dict                # {"train": (X, y), "val": (X, y), "test": (X, y)}, NumPy arrays
    batch_size: int
    epochs: int               # the default budget: epochs of the train split, one evaluation per epoch
    metrics: tuple = ()       # names in fnn.metrics.METRICS reported on val/test
    l2: float | None = None   # L2 strength in the training objective (weights only, fnn.losses.l2_penalty)
    optimum: float | None = None  # known minimum of the full-batch training objective; None if unknown
    kind: str = "data"        # "data" or "function"
    objective: Callable | None = None  # function workloads with 2-D params: f(params) -> scalar
    bounds: tuple | None = None        # ((x_min, x_max), (y_min, y_max)) for the 2-D plot


# --------------------------------------------------------------------------------------------- validation
def _check_common(where, name, batch_size, epochs, metrics, l2):
    if not isinstance(name, str) or not name:
        raise ValueError(f"{where}: expected a non-empty string name, got {name!r}")
    for label, v in (("batch_size", batch_size), ("epochs", epochs)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise ValueError(f"{where}: expected {label} a positive int, got {v!r}")
    unknown = [m for m in metrics if m not in METRICS]
    if isinstance(metrics, str) or unknown:
        raise ValueError(f"{where}: expected metrics a tuple of names in fnn.metrics.METRICS "
                         f"({', '.join(sorted(METRICS))}), got {metrics!r}")
    if l2 is not None and not (isinstance(l2, (int, float)) and l2 >= 0):
        raise ValueError(f"{where}: expected l2 None or a number >= 0, got {l2!r}")


def _as_split(where, split, pair):
    if not (isinstance(pair, (tuple, list)) and len(pair) == 2):
        raise ValueError(f"{where}: expected data[{split!r}] a pair (X, y) of arrays, got {type(pair).__name__}")
    X, y = np.asarray(pair[0]), np.asarray(pair[1])
    if X.ndim < 1 or y.ndim < 1 or X.shape[0] != y.shape[0] or X.shape[0] == 0:
        raise ValueError(f"{where}: expected data[{split!r}] = (X, y) with the same number n >= 1 of rows, got "
                         f"shapes {X.shape} and {y.shape}")
    if not np.issubdtype(X.dtype, np.floating):
        raise ValueError(f"{where}: expected floating-point features in data[{split!r}], got dtype {X.dtype}; "
                         f"convert them with X.astype(np.float32)")
    y = y.astype(np.int32) if np.issubdtype(y.dtype, np.integer) else y.astype(np.float32)
    return X.astype(np.float32), y


def check_data(where: str, data, batch_size: int) -> dict:
    """Validate a data dict (keys ``train``/``val``/``test``, each ``(X, y)`` with matching rows, the same feature
    shape in every split, ``batch_size <= n_train``) and return it as float32 features with int32 labels or float32
    targets."""
    if not isinstance(data, dict) or set(data) != set(SPLITS):
        got = sorted(data) if isinstance(data, dict) else type(data).__name__
        raise ValueError(f"{where}: expected data a dict with exactly the keys {list(SPLITS)}, got {got}; pass "
                         f"{{'train': (X, y), 'val': (X, y), 'test': (X, y)}}")
    out = {s: _as_split(where, s, data[s]) for s in SPLITS}
    shapes = {s: (out[s][0].shape[1:], out[s][1].shape[1:]) for s in SPLITS}
    if len(set(shapes.values())) != 1:
        raise ValueError(f"{where}: expected every split to have the same feature and target shapes, got "
                         f"{ {s: v for s, v in shapes.items()} }")
    n_train = out["train"][0].shape[0]
    if batch_size > n_train:
        raise ValueError(f"{where}: expected batch_size <= n_train = {n_train}, got batch_size={batch_size}; use a "
                         f"smaller batch or more training data")
    return out


# --------------------------------------------------------------------------------------------- constructors
def from_model(name: str, model, loss: Callable, data: dict, *, batch_size: int, epochs: int, input_shape=None,
               metrics=(), l2: float | None = None, description: str = "", optimum: float | None = None) -> Workload:
    """A workload from an fnn layer and data splits: the one function to add your own problem to the lab.

    ``init(key)`` is ``fnn.layers.init_with_state(model, key, input_shape)`` (params, and the state of a stateful
    model such as one with BatchNorm, else ``None``); ``apply`` is ``model.apply``.

    Args:
      name: the workload's name in reports.
      model: an fnn layer (``Layer(init, apply)``), e.g. ``fnn.layers.mlp([32, 10])``.
      loss: ``loss(outputs, y) -> scalar``, the mean over the batch (``fnn.losses``).
      data: ``{"train": (X, y), "val": (X, y), "test": (X, y)}``: NumPy arrays, floating features ``(n, ...)``,
        integer labels ``(n,)`` or floating targets ``(n, ...)`` (cast to float32 / int32).
      batch_size: examples per step, ``1 <= batch_size <= n_train``.
      epochs: the default budget (epochs of the train split).
      input_shape: the model's input shape; default ``(-1, *X_train.shape[1:])``.
      metrics: names in ``fnn.metrics.METRICS`` reported on val/test.
      l2: L2 strength of the training objective (weights only, as ``fnn.train.fit``'s ``l2=``).
      description: one line for the report.
      optimum: the known minimum of the full-batch training objective, if there is one.

    Returns:
      ``Workload`` with ``kind="data"``.

    Example:
      >>> import numpy as np
      >>> from fnn import layers, losses
      >>> X, y = np.ones((8, 3), np.float32), np.zeros(8, np.int32)
      >>> w = from_model("tiny", layers.mlp([4, 2]), losses.softmax_cross_entropy_with_integer_labels,
      ...                {"train": (X, y), "val": (X, y), "test": (X, y)}, batch_size=4, epochs=2)
      >>> w.init(jax.random.key(0))[1] is None
      True
    """
    where = f"from_model({name!r})"
    _check_common(where, name, batch_size, epochs, tuple(metrics), l2)
    if not (hasattr(model, "init") and hasattr(model, "apply")):
        raise ValueError(f"{where}: expected an fnn layer (with init and apply), got {type(model).__name__}")
    if not callable(loss):
        raise ValueError(f"{where}: expected loss a function (outputs, y) -> scalar, got {loss!r}")
    data = check_data(where, data, batch_size)
    input_shape = (-1, *data["train"][0].shape[1:]) if input_shape is None else tuple(input_shape)
    if tuple(input_shape[1:]) != data["train"][0].shape[1:]:
        raise ValueError(f"{where}: expected input_shape (-1, *X.shape[1:]) = (-1, *{data['train'][0].shape[1:]}), "
                         f"got {input_shape}")

    def init(key):
        _, params, state = layers.init_with_state(model, key, input_shape)
        return params, state

    X, y = (jnp.asarray(a[:batch_size]) for a in data["train"])
    try:  # shapes only: the model, its inputs and the loss fit together
        jax.eval_shape(lambda k: loss(engine.forward(model.apply, *init(k), X, train=False)[0], y),
                       jax.random.key(0))
    except Exception as e:  # noqa: BLE001 - re-raised with the workload named
        raise ValueError(f"{where}: the model and loss do not accept a training batch of shapes {X.shape} and "
                         f"{y.shape}: {type(e).__name__}: {e}") from e
    return Workload(name, description or f"{name}: a model on {data['train'][0].shape[0]} training examples", init,
                    model.apply, loss, data, int(batch_size), int(epochs), tuple(metrics), l2, optimum)


def _mean_output(outputs, targets):
    """The loss of a function workload: the mean of the per-example objective values (targets are placeholders)."""
    del targets
    return jnp.mean(outputs)


def from_function(name: str, f: Callable, sample_start: Callable, *, optimum: float | None = None,
                  steps_per_eval: int = 10, epochs: int = 20, bounds=None, description: str = "") -> Workload:
    """A deterministic workload: minimise ``f(params)`` from starts ``sample_start(key)``.

    Train X is ``zeros((steps_per_eval, 1))`` with ``batch_size`` 1 (an epoch = ``steps_per_eval`` steps on ``f``),
    val and test are ``zeros((1, 1))`` (an evaluation is ``f(params)``); ``apply(params, x)`` returns
    ``f(params) * ones(n)`` and the loss is its mean. Keys are ignored.

    Args:
      name: the workload's name.
      f: ``f(params) -> scalar``, traceable.
      sample_start: ``key -> params`` (traceable; the runner vmaps it over seeds).
      optimum: the known minimum of ``f``.
      steps_per_eval: full-objective steps between evaluations.
      epochs: evaluations in the default budget.
      bounds: ``((x_min, x_max), (y_min, y_max))`` when params are a point of the plane (``objective`` is then set).
      description: one line for the report.

    Returns:
      ``Workload`` with ``kind="function"``.
    """
    _check_common(f"from_function({name!r})", name, steps_per_eval, epochs, (), None)

    def apply(params, x, *, key=None, train=False):
        del key, train
        value = f(params)
        return value * jnp.ones((x.shape[0],), jnp.result_type(value))

    def init(key):
        return sample_start(key), None

    zeros = np.zeros
    data = {"train": (zeros((steps_per_eval, 1), np.float32), zeros((steps_per_eval,), np.float32)),
            "val": (zeros((1, 1), np.float32), zeros((1,), np.float32)),
            "test": (zeros((1, 1), np.float32), zeros((1,), np.float32))}
    return Workload(name, description or name, init, apply, _mean_output, data, 1, int(epochs), (), None, optimum,
                    "function", f if bounds is not None else None, bounds)


# ------------------------------------------------------------------------------------------ built-in problems
def noisy_quadratic(*, dim_small: int = 90, dim_large: int = 10, n: int = 1000, noise_std: float = 0.6,
                    batch_size: int = 128, epochs: int = 100, seed: int = 42) -> Workload:
    """DeepOBS's ``quadratic_deep``: ``l_i(theta) = 0.5 (theta - x_i)^T H (theta - x_i)``, ``x_i ~ N(0, s^2 I)``.

    As DeepOBS (``deepobs/tensorflow/testproblems/quadratic_deep.py``, ``datasets/quadratic.py``): d = 100, the
    spectrum D has 90 eigenvalues uniform in [0, 1] and 10 in [30, 60], ``H = Q^T D Q`` with ``Q`` a random rotation,
    1,000 train and 1,000 test samples with noise std ``s = 0.6`` (DeepOBS's default ``noise_level``), batch 128,
    ``theta_0 = ones(d)``. Departures: DeepOBS draws D and Q once (NumPy seed 42), so every run sees the same
    Hessian; here D is drawn once (from ``seed``) but ``Q`` is drawn per run inside ``init(key)`` (Haar,
    ``problems.random_rotation``) and kept in the state ``RotatedQuadratic(Q, D)``, so each seed is a differently
    rotated problem with the same spectrum, and the start ``ones(d)`` is the same for every seed. A validation split
    of ``n`` more samples is added (DeepOBS has none), and the data come from ``fnn.data.numpy_rng``.

    ``optimum`` is ``None``: the full-batch train minimum, at ``theta* = mean(x_train)``, is
    ``0.5 tr(H S)`` with ``S`` the train covariance (ddof 0), which depends on the seed's rotation. The population
    loss ``E_x l(theta) = 0.5 (theta^T H theta + s^2 tr(H))`` is minimised at ``theta = 0`` with value
    ``0.5 s^2 sum(D)``, the same for every rotation.

    Reference: Schneider, Balles & Hennig, "DeepOBS: a deep learning optimizer benchmark suite", ICLR 2019, sec. 3.
    """
    rng = numpy_rng(jax.random.key(seed))
    eigenvalues = problems.deep_spectrum(rng, dim_small, dim_large).astype(np.float32)
    d = eigenvalues.shape[0]
    splits = {s: (rng.normal(0.0, noise_std, (n, d)).astype(np.float32), np.zeros((n,), np.float32))
              for s in SPLITS}

    def init(key):
        return jnp.ones((d,), jnp.float32), problems.RotatedQuadratic(problems.random_rotation(key, d),
                                                                        jnp.asarray(eigenvalues))

    def apply(params, x, *, state, key=None, train=False):
        del key, train
        return problems.quadratic_losses(params, x, state), state

    return Workload("noisy_quadratic", f"DeepOBS quadratic_deep: {d}-D noisy quadratic, {dim_large} eigenvalues in "
                    f"[30, 60], a rotation per seed", init, apply, _mean_output, check_data("noisy_quadratic",
                    splits, batch_size), batch_size, epochs)


def _uniform_start(low, high):
    low, high = jnp.asarray(low, jnp.float32), jnp.asarray(high, jnp.float32)
    return lambda key: jax.random.uniform(key, low.shape, jnp.float32, low, high)


def rosenbrock(*, steps_per_eval: int = 10, epochs: int = 20) -> Workload:
    """Rosenbrock's valley ``(1 - x)^2 + 100 (y - x^2)^2`` from uniform starts in [-2, 2] x [-1, 3]; optimum 0."""
    return from_function("rosenbrock", problems.rosenbrock, _uniform_start([-2, -1], [2, 3]), optimum=0.0,
                         steps_per_eval=steps_per_eval, epochs=epochs, bounds=((-2.0, 2.0), (-1.0, 3.0)),
                         description="Rosenbrock valley (1-x)^2 + 100 (y-x^2)^2, starts in [-2,2]x[-1,3]")


def rastrigin(*, dim: int = 2, steps_per_eval: int = 10, epochs: int = 20) -> Workload:
    """Rastrigin's ``10 d + sum(x_i^2 - 10 cos(2 pi x_i))`` from uniform starts in [-5.12, 5.12]^d; optimum 0."""
    return from_function("rastrigin", problems.rastrigin, _uniform_start([-5.12] * dim, [5.12] * dim), optimum=0.0,
                         steps_per_eval=steps_per_eval, epochs=epochs,
                         bounds=((-5.12, 5.12), (-5.12, 5.12)) if dim == 2 else None,
                         description=f"{dim}-D Rastrigin, many local minima, starts in [-5.12,5.12]^{dim}")


def saddle(*, std: float = 0.1, steps_per_eval: int = 10, epochs: int = 20) -> Workload:
    """``x^2 - y^2 + y^4 / 4`` from starts ``N(0, std^2 I)`` near its saddle at 0; minima -1 at ``(0, +-sqrt 2)``."""
    return from_function("saddle", problems.saddle, lambda key: std * jax.random.normal(key, (2,), jnp.float32),
                         optimum=-1.0, steps_per_eval=steps_per_eval, epochs=epochs, bounds=((-2.0, 2.0), (-2.5, 2.5)),
                         description=f"escape the saddle of x^2 - y^2 + y^4/4 from N(0, {std}^2) starts")


_CE = losses.softmax_cross_entropy_with_integer_labels


def logreg_digits(*, l2: float = 1e-3, batch_size: int = 64, epochs: int = 15, seed: int = 0) -> Workload:
    """Multinomial logistic regression (``Dense(10)``) on standardised digits (60/20/20 stratified split), softmax
    cross-entropy plus ``(l2 / 2) ||W||^2``; ``optimum`` is the exact train minimum (``problems.
    softmax_regression_optimum``, float64 L-BFGS-B to a gradient max-norm of about 1e-10)."""
    splits = problems.digits_splits(seed=seed)
    value, _, _ = problems.softmax_regression_optimum(*splits["train"], l2, 10)
    return from_model("logreg_digits", layers.Dense(10), _CE, splits, batch_size=batch_size, epochs=epochs,
                      metrics=("accuracy",), l2=l2, optimum=value,
                      description=f"softmax regression on 8x8 digits, l2={l2:g}, convex with a known optimum")


def mlp_digits(*, hidden: int = 32, activation=layers.Tanh, batch_size: int = 64, epochs: int = 15,
               seed: int = 0) -> Workload:
    """An MLP 64-``hidden``-10 (``fnn.layers.mlp``, tanh) on standardised digits, softmax cross-entropy."""
    return from_model("mlp_digits", layers.mlp([hidden, 10], activation), _CE, problems.digits_splits(seed=seed),
                      batch_size=batch_size, epochs=epochs, metrics=("accuracy",),
                      description=f"MLP 64-{hidden}-10 on 8x8 digits")


def autoencoder_digits(*, code: int = 16, batch_size: int = 64, epochs: int = 15, seed: int = 0) -> Workload:
    """An autoencoder 64-``code``-64 (sigmoid units) reconstructing the digits' pixels in [0, 1] (``y = X``).

    The decoder's output sigmoid is applied inside the loss: the model returns logits ``z`` and the loss is
    ``fnn.losses.sigmoid_binary_cross_entropy(z, X)``, the binary cross-entropy of ``sigmoid(z)`` without clipping.
    """
    splits = problems.digits_splits(seed=seed, standardize=False)
    splits = {k: (X, X) for k, (X, _) in splits.items()}
    model = layers.serial(layers.Dense(code), layers.Sigmoid, layers.Dense(64))
    return from_model("autoencoder_digits", model, losses.sigmoid_binary_cross_entropy, splits,
                      batch_size=batch_size, epochs=epochs, description=f"autoencoder 64-{code}-64 on 8x8 digits")


def gru_digits(*, hidden: int = 32, batch_size: int = 64, epochs: int = 15, seed: int = 0) -> Workload:
    """A GRU(``hidden``) reading each digit as 8 time steps of 8 pixel rows, then ``Dense(10)`` on its last output."""
    model = layers.serial(layers.RNN(layers.GRUCell(hidden), return_sequences=False), layers.Dense(10))
    return from_model("gru_digits", model, _CE, problems.digits_splits(seed=seed, images=True), batch_size=batch_size,
                      epochs=epochs, metrics=("accuracy",), description=f"GRU({hidden}) over the 8 rows of 8x8 digits")


def fmnist_mlp(*, hidden: int = 256, n_train: int = 10_000, n_val: int = 2_000, n_test: int = 2_000,
               batch_size: int = 128, epochs: int = 10, seed: int = 0, path=None) -> Workload:
    """An MLP 784-``hidden``-10 (ReLU) on a fixed Fashion-MNIST subset (``problems.fmnist_splits``); needs the
    Debian package ``dataset-fashion-mnist`` (or ``path=``)."""
    splits = problems.fmnist_splits(n_train=n_train, n_val=n_val, n_test=n_test, seed=seed, path=path)
    return from_model("fmnist_mlp", layers.mlp([hidden, 10]), _CE, splits, batch_size=batch_size, epochs=epochs,
                      metrics=("accuracy",), description=f"MLP 784-{hidden}-10 on {n_train} Fashion-MNIST images")


def fmnist_cnn(*, n_train: int = 10_000, n_val: int = 2_000, n_test: int = 2_000, batch_size: int = 128,
               epochs: int = 10, seed: int = 0, path=None) -> Workload:
    """A small CNN (conv 16 3x3, pool, conv 32 3x3, pool, dense 10; ReLU) on a fixed Fashion-MNIST subset."""
    splits = problems.fmnist_splits(n_train=n_train, n_val=n_val, n_test=n_test, seed=seed, images=True, path=path)
    model = layers.serial(layers.Conv(16, (3, 3), padding="SAME"), layers.Relu, layers.MaxPool((2, 2), (2, 2)),
                          layers.Conv(32, (3, 3), padding="SAME"), layers.Relu, layers.MaxPool((2, 2), (2, 2)),
                          layers.Flatten, layers.Dense(10))
    return from_model("fmnist_cnn", model, _CE, splits, batch_size=batch_size, epochs=epochs, metrics=("accuracy",),
                      description=f"CNN 2x(conv, pool) on {n_train} Fashion-MNIST images")


# ----------------------------------------------------------------------------------------------- registry
WORKLOADS = types.MappingProxyType({
    "noisy_quadratic": noisy_quadratic, "rosenbrock": rosenbrock, "rastrigin": rastrigin, "saddle": saddle,
    "logreg_digits": logreg_digits, "mlp_digits": mlp_digits, "autoencoder_digits": autoencoder_digits,
    "gru_digits": gru_digits, "fmnist_mlp": fmnist_mlp, "fmnist_cnn": fmnist_cnn,
})

SUITES = types.MappingProxyType({
    "quick": ("noisy_quadratic", "rosenbrock", "logreg_digits", "mlp_digits"),
    "full": ("noisy_quadratic", "rosenbrock", "logreg_digits", "mlp_digits", "rastrigin", "saddle",
             "autoencoder_digits", "gru_digits"),
})


def get(name: str, **options) -> Workload:
    """Build the registered workload ``name`` with ``options`` (its builder's keyword arguments).

    Example:
      >>> get("rosenbrock", epochs=5).epochs
      5
    """
    if name not in WORKLOADS:
        raise ValueError(f"get: unknown workload {name!r}; registered: {', '.join(WORKLOADS)} (suites: "
                         f"{', '.join(SUITES)}); or build your own with from_model / from_function")
    return WORKLOADS[name](**options)
