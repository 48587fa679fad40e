"""Gradient clipping tames exploding gradients: a tanh RNN on a long sequence, plain SGD vs clipped SGD.

The recurrent weights start as U = 1.5 Q (Q orthogonal), past the spectral-radius-1 boundary of Pascanu et
al.'s analysis, so the back-propagated gradient is multiplied by up to ||diag(1 - h^2) U|| at each of T steps.
The forward pass stays bounded (tanh), but the gradient norm is in the hundreds at T = 100 (1e7 with U = 2 Q).
The same SGD run is made twice: plain (a few steps throw the weights far away and the loss explodes) and with
the gradient rescaled to global norm <= ``clip_norm`` (``fnn.optimizers.transforms.clip_by_global_norm``; Pascanu et
al.'s
algorithm 1: ``g <- g * clip_norm / ||g||`` when ``||g|| > clip_norm``).
Task: read T numbers in [-1, 1] and output the last one (easy to learn once training is stable).

Run:  python examples/exploding_gradients.py [--quick]

Reference: Pascanu, Mikolov & Bengio, "On the difficulty of training recurrent neural networks", ICML 2013,
sec. 3.2 and algorithm 1; Bengio, Simard & Frasconi, IEEE Trans. Neural Networks 5(2), 1994.
"""
import argparse

import jax
import jax.numpy as jnp
import numpy as np

from fnn import initializers as ini
from fnn import optimizers as opt
from fnn.layers import Dense, serial
from fnn.layers.recurrent import RNN, SimpleRNNCell
from fnn.optimizers.transforms import clip_by_global_norm, global_norm


def run(quick=False, seed=0):
    """Train twice (plain / clipped SGD); returns the losses, the first gradient norm and the settings."""
    T, steps, lr, clip_norm, batch = (60, 80, 0.2, 1.0, 32) if quick else (100, 300, 0.2, 1.0, 64)
    model = serial(RNN(SimpleRNNCell(32, U_init=ini.orthogonal(1.5)), return_sequences=False), Dense(1))
    key_init, key_data = jax.random.split(jax.random.key(seed))
    _, params0 = model.init(key_init, (-1, T, 1))

    def batch_at(i):
        x = jax.random.uniform(jax.random.fold_in(key_data, i), (batch, T, 1), minval=-1.0, maxval=1.0)
        return x, x[:, -1, :]

    def loss_fn(params, x, y):
        return jnp.mean((model.apply(params, x) - y) ** 2)

    def train(rule):
        def step(carry, i):
            params, state = carry
            loss, grads = jax.value_and_grad(loss_fn)(params, *batch_at(i))
            updates, state = rule.update(grads, state, params)
            return (opt.apply_updates(params, updates), state), (loss, global_norm(grads))
        _, (losses, norms) = jax.jit(lambda p: jax.lax.scan(step, (p, rule.init(p)), jnp.arange(steps)))(params0)
        return np.asarray(losses), np.asarray(norms)

    loss_plain, norm_plain = train(opt.sgd(lr))
    loss_clip, norm_clip = train(opt.chain(clip_by_global_norm(clip_norm), opt.sgd(lr)))
    tail = max(1, steps // 10)
    return {"T": T, "steps": steps, "lr": lr, "clip_norm": clip_norm, "loss_start": float(loss_plain[0]),
            "grad_norm_first": float(norm_plain[0]), "loss_plain": float(np.mean(loss_plain[-tail:])),
            "loss_clipped": float(np.mean(loss_clip[-tail:])), "grad_norm_plain_max": float(np.nanmax(norm_plain)),
            "curve_plain": loss_plain, "curve_clipped": loss_clip, "grad_norm_clipped": norm_clip}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny settings for the test suite")
    r = run(quick=parser.parse_args().quick)
    print(f"tanh RNN, H=32, U = 1.5 * orthogonal, T={r['T']}, SGD lr={r['lr']}, {r['steps']} steps")
    print(f"gradient norm at step 0: {r['grad_norm_first']:.3g}; loss at step 0: {r['loss_start']:.3f}")
    print(f"{'step':>6} {'plain SGD loss':>16} {'clipped SGD loss':>18} {'clipped: ||g||':>15}")
    for i in sorted({0, 1, 2, 5, 10, r['steps'] // 4, r['steps'] // 2, r['steps'] - 1}):
        print(f"{i:>6} {r['curve_plain'][i]:>16.4g} {r['curve_clipped'][i]:>18.4g} {r['grad_norm_clipped'][i]:>15.3g}")
    print(f"mean loss over the last 10% of steps: plain {r['loss_plain']:.4g}, clipped {r['loss_clipped']:.4g}")


if __name__ == "__main__":
    main()
