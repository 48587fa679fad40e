"""The Neural Turing Machine (fnn.classic.ntm): every addressing step (eqs. 2-9) against a NumPy loop, weightings
stay normalised, gradients through a few steps against central differences (float64), the scan against a Python
loop of steps, and the error messages."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fnn.classic.ntm import (
    address,
    content_weights,
    head_outputs,
    head_sizes,
    interpolate,
    neural_turing_machine,
    read,
    sharpen,
    shift,
    write,
)

RNG = np.random.default_rng(0)


def np_softmax(z):
    z = np.exp(z - z.max())
    return z / z.sum()


def test_content_weights_cosine_softmax():
    N, W = 7, 4
    M, k, beta = RNG.normal(size=(N, W)), RNG.normal(size=W), 3.7
    cos = np.array([k @ M[i] / (np.linalg.norm(k) * np.linalg.norm(M[i])) for i in range(N)])
    ref = np_softmax(beta * cos)
    np.testing.assert_allclose(content_weights(jnp.asarray(k), beta, jnp.asarray(M)), ref, rtol=1e-5, atol=1e-6)
    # beta = 0 ignores the content: uniform; a large beta picks the most similar row
    np.testing.assert_allclose(content_weights(jnp.asarray(k), 0.0, jnp.asarray(M)), np.full(N, 1 / N), rtol=1e-6)
    assert int(jnp.argmax(content_weights(jnp.asarray(M[3]), 100.0, jnp.asarray(M)))) == 3


def test_interpolate():
    w_c, w_prev = np_softmax(RNG.normal(size=6)), np_softmax(RNG.normal(size=6))
    for g in (0.0, 0.3, 1.0):
        np.testing.assert_allclose(interpolate(jnp.asarray(w_c), jnp.asarray(w_prev), g),
                                   g * w_c + (1 - g) * w_prev, rtol=1e-6)


@pytest.mark.parametrize("S", [1, 2])
def test_shift_is_circular_convolution(S):
    N = 6
    w, s = np_softmax(RNG.normal(size=N)), np_softmax(RNG.normal(size=2 * S + 1))
    # eq. (8) literally: w~(i) = sum_j w(j) s(i - j mod N), s(d) the weight of shift d (zero outside -S..S)
    s_of = {d % N: s[d + S] for d in range(-S, S + 1)}
    ref = np.array([sum(w[j] * s_of.get((i - j) % N, 0.0) for j in range(N)) for i in range(N)])
    got = shift(jnp.asarray(w), jnp.asarray(s))
    np.testing.assert_allclose(got, ref, rtol=1e-5)
    if S == 1:   # shifts -1, 0, +1 as a sum of np.roll
        np.testing.assert_allclose(got, s[0] * np.roll(w, -1) + s[1] * w + s[2] * np.roll(w, 1), rtol=1e-5)
    one_hot = np.eye(N)[0]
    np.testing.assert_allclose(shift(jnp.asarray(one_hot), jnp.asarray(np.eye(2 * S + 1)[S + 1])), np.eye(N)[1])
    np.testing.assert_allclose(shift(jnp.asarray(one_hot), jnp.asarray(np.eye(2 * S + 1)[S - 1])), np.eye(N)[-1])


def test_sharpen():
    w = np_softmax(RNG.normal(size=5))
    for gamma in (1.0, 2.5):
        np.testing.assert_allclose(sharpen(jnp.asarray(w), gamma), w ** gamma / np.sum(w ** gamma), rtol=1e-5)
    assert np.all(np.isfinite(jax.grad(lambda gm: sharpen(jnp.array([0.0, 1.0]), gm)[1])(2.0)))


def test_read_and_write_erase_then_add():
    N, W = 5, 3
    M, w = RNG.normal(size=(N, W)), np_softmax(RNG.normal(size=N))
    e, a = RNG.uniform(size=W), RNG.normal(size=W)
    np.testing.assert_allclose(read(jnp.asarray(w), jnp.asarray(M)), sum(w[i] * M[i] for i in range(N)), rtol=1e-5)
    ref = np.empty_like(M)
    for i in range(N):
        erased = M[i] * (np.ones(W) - w[i] * e)        # eq. (3)
        ref[i] = erased + w[i] * a                      # eq. (4)
    np.testing.assert_allclose(write(jnp.asarray(M), jnp.asarray(w), jnp.asarray(e), jnp.asarray(a)), ref,
                               rtol=1e-5, atol=1e-6)
    # full weight and e = 1 replaces the row by a; zero weight leaves it alone
    full = write(jnp.asarray(M), jnp.eye(N)[2], jnp.ones(W), jnp.asarray(a))
    np.testing.assert_allclose(full[2], a, rtol=1e-6)
    np.testing.assert_allclose(np.delete(np.asarray(full), 2, 0), np.delete(M, 2, 0), rtol=1e-6)


def test_head_outputs_constraints_and_weightings_stay_normalised():
    W, S, N = 3, 1, 8
    memory, w = jnp.asarray(RNG.normal(size=(N, W))), jnp.full(N, 1 / N)

    @jax.jit
    def one(raw, w, memory):
        h = head_outputs(raw, W, S, True)
        w = address(h, w, memory)
        return h, w, write(memory, w, h.e, h.a)

    for _ in range(5):
        h, w, memory = one(jnp.asarray(5 * RNG.normal(size=head_sizes(W, S, True))), w, memory)
        assert h.beta >= 0 and 0 < h.g < 1 and h.gamma >= 1 and h.k.shape == (W,)
        assert np.all((h.e > 0) & (h.e < 1)) and np.all(np.abs(h.a) <= 1)
        np.testing.assert_allclose(jnp.sum(h.s), 1.0, rtol=1e-6)
        assert np.all(w >= 0)
        np.testing.assert_allclose(jnp.sum(w), 1.0, rtol=1e-5)
    assert head_outputs(jnp.zeros(head_sizes(W, S, False)), W, S, False).e is None


@pytest.fixture(scope="module")
def tiny():
    model = neural_turing_machine(2, memory_shape=(5, 3), controller_size=4, controller="feedforward",
                                  read_heads=2)
    params = jax.jit(model.init, static_argnums=1)(jax.random.key(1), 3)   # one compile, not one per op
    xs = jax.random.normal(jax.random.key(2), (2, 3, 3))
    return model, params, xs


def test_scan_equals_python_loop_of_steps(tiny):
    model, params, xs = tiny
    ys, states = model.apply(params, xs, return_state=True)
    assert ys.shape == (2, 3, 2) and states.w_read.shape == (2, 3, 2, 5) and states.memory.shape == (2, 3, 5, 3)
    step = jax.jit(model.step)
    for b in range(2):
        state = model.initial_state(params)
        for t in range(3):
            state, y = step(params, state, xs[b, t])
            np.testing.assert_allclose(ys[b, t], y, rtol=1e-5, atol=1e-6)
            np.testing.assert_allclose(states.memory[b, t], state.memory, rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(jnp.sum(states.w_write[b], -1), np.ones(3), rtol=1e-5)


def test_grad_through_steps_matches_finite_differences():
    """Two steps of the heads' whole path (constraints, eqs. 5-9, write 3-4, read 2) in float64: the gradient
    with respect to the raw head outputs of every step and the initial memory, against central differences."""
    W, S, N, T = 2, 1, 4, 2
    n_read, n_write = head_sizes(W, S, False), head_sizes(W, S, True)

    def loss(theta):
        raw, memory = theta[:T * (n_read + n_write)].reshape(T, -1), theta[T * (n_read + n_write):].reshape(N, W)
        w_r = w_w = jnp.array([0.7, 0.1, 0.1, 0.1], theta.dtype)
        total = 0.0
        for t in range(T):
            hr, hw = head_outputs(raw[t, :n_read], W, S, False), head_outputs(raw[t, n_read:], W, S, True)
            w_r, w_w = address(hr, w_r, memory), address(hw, w_w, memory)
            total = total + jnp.sum(jnp.sin(read(w_r, memory)))
            memory = write(memory, w_w, hw.e, hw.a)
        return total + jnp.sum(memory ** 2)

    with jax.enable_x64(True):
        theta = jax.random.normal(jax.random.key(3), (T * (n_read + n_write) + N * W,), jnp.float64)
        value_and_grad = jax.jit(jax.value_and_grad(loss))
        g = value_and_grad(theta)[1]      # one compiled program gives the gradient and the differences' values
        for i in range(3):
            v = jax.random.normal(jax.random.key(10 + i), theta.shape, jnp.float64)
            fd = (value_and_grad(theta + 1e-6 * v)[0] - value_and_grad(theta - 1e-6 * v)[0]) / 2e-6
            np.testing.assert_allclose(g @ v, fd, rtol=1e-6, atol=1e-9)
        assert np.all(g != 0)


def test_errors(tiny):
    model, params, xs = tiny
    with pytest.raises(ValueError, match=r"shift: expected an odd number 2S\+1 <= N = 4 .* got 2"):
        shift(jnp.ones(4) / 4, jnp.ones(2) / 2)
    with pytest.raises(ValueError, match=r"head_outputs: expected raw outputs of shape \(8,\) .* got shape \(7,\)"):
        head_outputs(jnp.zeros(7), 2, 1, False)
    with pytest.raises(ValueError, match=r"expected controller 'lstm' or 'feedforward', got 'gru'"):
        neural_turing_machine(2, controller="gru")
    with pytest.raises(ValueError, match=r"expected memory_shape = \(N locations, W width\).*got \[8, 4\]"):
        neural_turing_machine(2, memory_shape=[8, 4])
    with pytest.raises(ValueError, match=r"expected 2 \* shifts \+ 1 <= N = 4 locations, got shifts=2"):
        neural_turing_machine(2, memory_shape=(4, 2), shifts=2)
    with pytest.raises(ValueError, match=r"expected a positive integer read_heads, got 0"):
        neural_turing_machine(2, read_heads=0)
    with pytest.raises(ValueError, match=r"expected inputs of shape \(batch, time, features\), got shape \(3, 3\)"):
        model.apply(params, xs[0])
    with pytest.raises(ValueError, match=r"expected 3 input features .* got shape \(2, 3, 5\)"):
        model.apply(params, jnp.zeros((2, 3, 5)))
