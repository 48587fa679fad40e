"""fnn's one weight-decay mask (fnn.losses.weight_mask / resolve_mask): what it decays on real layers, and that
l2_penalty, transforms.weight_decay and adamw decay exactly the same leaves."""
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from fnn import layers as L
from fnn import losses
from fnn import optimizers as fo
from fnn.optimizers import transforms as ft


def model_params():
    """Params of Conv -> BatchNorm -> Dense, plus MultiHeadAttention, LayerNorm and Embedding, in one dict."""
    key = jax.random.key(0)
    cnn = L.serial(L.Conv(4, (3, 3)), L.BatchNorm(), L.Relu, L.Flatten, L.Dense(3))
    _, cnn_params, _ = L.init_with_state(cnn, key, (-1, 6, 6, 2))
    _, att = L.MultiHeadAttention(num_heads=2, head_dim=3).init(key, (-1, 5, 4))
    _, ln = L.LayerNorm().init(key, (-1, 4))
    _, emb = L.Embedding(10, 4).init(key, (-1, 7))
    return {"cnn": cnn_params, "att": att, "ln": ln, "emb": emb}


def test_weight_mask_on_real_layers():
    params = model_params()
    mask = losses.weight_mask(params)
    conv, bn, _, _, dense = mask["cnn"]
    assert conv.W is True and dense.W is True  # Dense W and the conv kernel are weights
    assert conv.b is False and dense.b is False  # biases, the conv bias (1, 1, 1, c) included
    assert bn.gamma is False and bn.beta is False  # BatchNorm's scale and shift
    assert mask["ln"].gamma is False and mask["ln"].beta is False
    att = mask["att"]
    assert (att.Wq, att.Wk, att.Wv, att.Wo) == (True,) * 4
    assert (att.bq, att.bk, att.bv, att.bo) == (False,) * 4  # attention biases are 2-D: named, not by rank
    assert mask["emb"].table is True
    assert np.ndim(params["cnn"][0].b) == 4 and np.ndim(params["att"].bq) == 2  # the rank rule alone would fail


def _decayed(params, tree):
    """The set of leaf paths where ``tree`` is non-zero."""
    return {jax.tree_util.keystr(p) for p, x in jax.tree_util.tree_leaves_with_path(tree) if np.any(np.asarray(x))}


def conv_only(params):
    """A callable mask (optax's convention): the first layer of the CNN only, by tree path."""
    return jax.tree_util.tree_map_with_path(lambda path, _: jax.tree_util.keystr(path).startswith("['cnn'][0]"),
                                            params)


@pytest.mark.parametrize("mask", [None, True, conv_only])
def test_l2_penalty_weight_decay_and_adamw_decay_the_same_leaves(mask):
    params = model_params()
    lam, lr = 0.1, 0.01
    penalty_grad = jax.grad(losses.l2_penalty)(params, lam, mask)
    zeros = jax.tree.map(jnp.zeros_like, params)
    coupled, _ = ft.weight_decay(lam, mask).update(zeros, (), params)
    opt = fo.adamw(lr, weight_decay=lam, mask=mask)
    decoupled, _ = opt.update(zeros, opt.init(params), params)  # zero gradients: Adam's direction is 0
    expected = losses.resolve_mask(params, mask)
    for g, c, d, x, on in zip(*(jax.tree.leaves(t) for t in (penalty_grad, coupled, decoupled, params, expected))):
        want = lam * np.asarray(x) if on else np.zeros(np.shape(x))
        np.testing.assert_allclose(g, want, rtol=1e-6)  # d/dx lam/2 ||x||^2 = lam x on the masked leaves
        np.testing.assert_allclose(c, want, rtol=1e-6)
        np.testing.assert_allclose(d, -lr * want, rtol=1e-6, atol=1e-12)
    assert _decayed(params, penalty_grad) == _decayed(params, coupled) == _decayed(params, decoupled)
    assert 0 < len(_decayed(params, penalty_grad)) <= len(jax.tree.leaves(params))


def test_optax_adamw_with_weight_mask_is_the_twin():
    params = model_params()
    grads = jax.tree.map(lambda x: jnp.cos(3.0 * x) + 0.1, params)
    ours, theirs = fo.adamw(1e-2, weight_decay=0.5), optax.adamw(1e-2, weight_decay=0.5, mask=losses.weight_mask)
    s1, s2 = ours.init(params), theirs.init(params)
    p1 = p2 = params
    for _ in range(3):
        u1, s1 = ours.update(grads, s1, p1)
        u2, s2 = theirs.update(grads, s2, p2)
        p1, p2 = fo.apply_updates(p1, u1), optax.apply_updates(p2, u2)
    for a, b in zip(jax.tree.leaves(p1), jax.tree.leaves(p2)):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


def test_resolve_mask_forms_and_errors():
    params = {"W": jnp.ones((2, 3)), "b": jnp.ones(3)}
    assert losses.resolve_mask(params) == {"W": True, "b": False}
    assert losses.resolve_mask(params, True) == {"W": True, "b": True}
    assert losses.resolve_mask(params, False) == {"W": False, "b": False}
    assert losses.resolve_mask(params, {"W": False, "b": True}) == {"W": False, "b": True}
    assert losses.resolve_mask(params, losses.weight_mask) == {"W": True, "b": False}
    assert losses.resolve_mask(params, lambda p: {"W": False, "b": True}) == {"W": False, "b": True}
    with pytest.raises(ValueError, match=r"adamw: mask must have the same tree structure as params; params: "
                                         r"PyTreeDef\(\{'W': \*, 'b': \*\}\), mask: PyTreeDef\(\{'W': \*\}\)"):
        losses.resolve_mask(params, {"W": True}, "adamw")
    with pytest.raises(ValueError, match=r"weight_decay: mask must have the same tree structure"):
        ft.weight_decay(0.1, mask=lambda p: (True,)).update(params, (), params)
