"""fnn.checks: every validator lets good values through and words its error as
"<where>: <name> must ..., got ...; <fix>" (tested by message)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fnn import checks


@pytest.mark.parametrize("call,message", [
    (lambda: checks.positive("adam", learning_rate=0.0),
     r"^adam: learning_rate must be > 0, got learning_rate=0.0; pass a number > 0\.$"),
    (lambda: checks.positive("adam", learning_rate=1e-3, eps=-1.0), r"^adam: eps must be > 0, got eps=-1.0; "),
    (lambda: checks.positive("f", x="a"), r"^f: x must be > 0, got x='a'; "),
    (lambda: checks.positive("f", x=None), r"^f: x must be > 0, got x=None; "),
    (lambda: checks.positive("f", x=float("nan")), r"^f: x must be > 0, got x=nan; "),
    (lambda: checks.positive("f", fix="use 1e-3.", x=0), r"^f: x must be > 0, got x=0; use 1e-3\.$"),
    (lambda: checks.positive("f", x=np.float32(-2.0)), r"^f: x must be > 0, got x=-2.0; "),
    (lambda: checks.positive("f", x=jnp.asarray(-2.0)), r"^f: x must be > 0, got x=-2.0; "),
    (lambda: checks.non_negative("weight_decay", rate=-1e-4), r"^weight_decay: rate must be >= 0, got rate=-0.0001; "),
    (lambda: checks.positive_int("top_k", k=0),
     r"^top_k: k must be a positive integer \(k >= 1\), got k=0; e\.g\. k=1\.$"),
    (lambda: checks.positive_int("top_k", k=2.0), r"^top_k: k must be a positive integer \(k >= 1\), got k=2.0; "),
    (lambda: checks.positive_int("top_k", k=True), r"^top_k: k must be a positive integer \(k >= 1\), got k=True; "),
    (lambda: checks.non_negative_int("lbfgs", steps=-1), r"^lbfgs: steps must be an integer >= 0, got steps=-1; "),
    (lambda: checks.unit_interval("adam", b1=1.0), r"^adam: b1 must lie in \[0, 1\), got b1=1.0; e\.g\. b1=0\.9\.$"),
    (lambda: checks.unit_interval("adam", b2=-0.1), r"^adam: b2 must lie in \[0, 1\), got b2=-0.1; "),
    (lambda: checks.probability("cosine", alpha=1.5), r"^cosine: alpha must lie in \[0, 1\], got alpha=1.5; "),
    (lambda: checks.in_range("m", 0.5, 1, mu=1.0), r"^m: mu must lie in \[0.5, 1\), got mu=1.0; "),
    (lambda: checks.in_range("m", 0.5, 1, closed=True, mu=1.5), r"^m: mu must lie in \[0.5, 1\], got mu=1.5; "),
    (lambda: checks.one_of("init", ("fan_in", "fan_out"), mode="fan_max"),
     r"^init: mode must be one of 'fan_in', 'fan_out', got 'fan_max'; pick one\.$"),
    (lambda: checks.one_of("sparse", (-2, -1, 0, 1), in_axis=True), r"^sparse: in_axis must be one of .*got True"),
    (lambda: checks.finite("constant", value=float("inf")),
     r"^constant: value must be a finite number, got value=inf; "),
])
def test_messages(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_good_values_pass():
    assert checks.positive("f", a=1, b=1e-12, c=np.float64(2.0), d=jnp.asarray(3.0)) is None
    assert checks.non_negative("f", a=0, b=0.0, c=5) is None
    assert checks.positive_int("f", a=1, b=np.int32(7)) is None
    assert checks.non_negative_int("f", a=0, b=3) is None
    assert checks.unit_interval("f", a=0.0, b=0.999) is None
    assert checks.probability("f", a=0.0, b=1.0) is None
    assert checks.in_range("f", -1, 1, closed=True, a=-1, b=1) is None
    assert checks.one_of("f", ("x", "y"), a="y") is None
    assert checks.one_of("f", (-2, -1, 0, 1), a=np.int64(-2)) is None
    assert checks.finite("f", a=-3.5, b=0) is None


def test_schedules_and_traced_values_are_let_through():
    # A schedule (any callable) cannot be inspected: optimizers accept one for every hyper-parameter.
    checks.positive("sgd", learning_rate=lambda t: 0.1)
    checks.unit_interval("momentum", mu=lambda t: 0.9)

    @jax.jit
    def traced(lr):  # under jit the value is unknown; the check must not fail or concretize it
        checks.positive("sgd", learning_rate=lr)
        checks.unit_interval("sgd", b=lr)
        return lr * 2

    assert float(traced(-1.0)) == -2.0


def test_first_bad_value_is_named():
    with pytest.raises(ValueError, match=r"^f: b must be > 0, got b=0"):
        checks.positive("f", a=1.0, b=0, c=-1)


def test_concrete():
    assert checks.concrete([1, 2]).tolist() == [1, 2]
    seen = []
    jax.jit(lambda x: seen.append(checks.concrete(x)) or x)(1.0)
    assert seen == [None]


def test_checks_is_a_foundation():
    # fnn/checks.py imports nothing from fnn (every other module may import it without a cycle).
    import ast
    import inspect
    tree = ast.parse(inspect.getsource(checks))
    imported = [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
    imported += [n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
    assert not [m for m in imported if m == "fnn" or m.startswith("fnn.")], imported
