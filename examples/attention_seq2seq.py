"""Encoder-decoder with attention: a GRU decoder attends over a GRU encoder's states to reverse digit sequences.

Task: read L digits (0..9) and write them in reverse order. Model (Luong et al.'s global attention, no input
feeding):

    e_1..e_L = RNN(GRUCell(H))(onehot(x))                       encoder states (batch, L, H)
    s_t      = GRU(s_{t-1}, onehot(y_{t-1})),  s_0 = e_L,  y_0 = <start>      decoder state
    c_t      = MultiHeadAttention(heads)([s_t, e_1..e_L])      context: weighted sum of the encoder states
    logits_t = Dense(V)(tanh(Dense(H)([c_t ; s_t])))           Luong eq. (5)-(6)

Training uses teacher forcing (the decoder reads the true previous digit, so all L steps run as one ``RNN`` call
and one attention call); testing decodes greedily, feeding back the predicted digit. The baseline is the same
model with the context replaced by zeros (the decoder only has the encoder's last state ``e_L``). For reversal the
right attention is the anti-diagonal: output step t should look at input position L + 1 - t.

Run:  python examples/attention_seq2seq.py [--quick]

Reference: Bahdanau, Cho & Bengio, "Neural machine translation by jointly learning to align and translate",
ICLR 2015; Luong, Pham & Manning, "Effective approaches to attention-based neural machine translation", EMNLP
2015, sec. 3.1 and eqs. (5)-(8); Sutskever, Vinyals & Le, NeurIPS 2014 (sequence to sequence, reversal).
"""
import argparse
import time
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from fnn import optimizers as opt
from fnn.layers import Dense, Tanh, serial
from fnn.layers.attention import MultiHeadAttention, attention_weights
from fnn.layers.recurrent import RNN, GRUCell
from fnn.losses import softmax_cross_entropy_with_integer_labels as cross_entropy

V = 10          # digits
START = V       # the decoder's first input symbol


class Seq2SeqParams(NamedTuple):
    encoder: object
    decoder: object
    attention: object
    readout: object


def build(hidden, heads, L):
    """The four parts; returns (init, encode, decode_teacher, decode_greedy, attention layer)."""
    encoder, dec_cell = RNN(GRUCell(hidden)), GRUCell(hidden)
    attention = MultiHeadAttention(heads)
    readout = serial(Dense(hidden), Tanh, Dense(V))

    def init(key):
        k = jax.random.split(key, 4)
        return Seq2SeqParams(encoder.init(k[0], (-1, L, V))[1], dec_cell.init(k[1], V + 1),
                             attention.init(k[2], [(-1, L, hidden), (-1, L, hidden)])[1],
                             readout.init(k[3], (-1, L, 2 * hidden))[1])

    def encode(params, x):
        return encoder.apply(params.encoder, jax.nn.one_hot(x, V))

    def logits_of(params, s, enc, use_attention):
        c = attention.apply(params.attention, [s, enc]) if use_attention else jnp.zeros_like(s)
        return readout.apply(params.readout, jnp.concatenate([c, s], -1))

    def decode_teacher(params, x, y, use_attention):
        enc = encode(params, x)
        prev = jnp.concatenate([jnp.full((y.shape[0], 1), START), y[:, :-1]], 1)
        s = RNN(dec_cell).apply(params.decoder, jax.nn.one_hot(prev, V + 1), initial_carry=enc[:, -1])
        return logits_of(params, s, enc, use_attention), s, enc

    def decode_greedy(params, x, use_attention):
        enc = encode(params, x)

        def step(carry, _):
            s, prev = carry
            s, _ = dec_cell.apply(params.decoder, s, jax.nn.one_hot(prev, V + 1))
            token = jnp.argmax(logits_of(params, s[:, None, :], enc, use_attention)[:, 0], -1)
            return (s, token), token
        _, tokens = jax.lax.scan(step, (enc[:, -1], jnp.full((x.shape[0],), START)), None, length=x.shape[1])
        return tokens.T

    return init, decode_teacher, decode_greedy


def train_and_test(use_attention, *, L, hidden, heads, steps, batch, lr, seed=0, n_test=1000):
    init, decode_teacher, decode_greedy = build(hidden, heads, L)
    k_init, k_data, k_test = jax.random.split(jax.random.key(seed), 3)
    params = init(k_init)
    optimizer = opt.adam(lr)

    def loss_fn(params, x):
        logits = decode_teacher(params, x, x[:, ::-1], use_attention)[0]
        return cross_entropy(logits.reshape(-1, V), x[:, ::-1].reshape(-1))

    @jax.jit
    def train_and_test_jit(params, x):
        def step(carry, i):
            params, state = carry
            xb = jax.random.randint(jax.random.fold_in(k_data, i), (batch, L), 0, V)
            loss, grads = jax.value_and_grad(loss_fn)(params, xb)
            updates, state = optimizer.update(grads, state, params)
            return (opt.apply_updates(params, updates), state), loss
        (params, _), losses = jax.lax.scan(step, (params, optimizer.init(params)), jnp.arange(steps))
        pred = decode_greedy(params, x, use_attention)
        # the attention weights under teacher forcing, heads averaged: (batch, L_out, L_in)
        _, s, enc = decode_teacher(params, x, x[:, ::-1], use_attention)
        a = params.attention
        Q = jnp.einsum("btd,dhe->bhte", s, a.Wq) + a.bq[None, :, None, :]
        K = jnp.einsum("btd,dhe->bhte", enc, a.Wk) + a.bk[None, :, None, :]
        return losses, pred, jnp.mean(attention_weights(Q, K), 1)

    start = time.perf_counter()
    x = jax.random.randint(k_test, (n_test, L), 0, V)
    losses, pred, weights = train_and_test_jit(params, x)
    result = {"token_accuracy": float(jnp.mean(pred == x[:, ::-1])),
              "sequence_accuracy": float(jnp.mean(jnp.all(pred == x[:, ::-1], 1))),
              "final_train_loss": float(jnp.mean(losses[-20:])), "seconds": time.perf_counter() - start}
    if use_attention:  # how often the strongest attention weight is on the mirrored position L - 1 - t
        result["attention_on_mirror"] = float(jnp.mean(jnp.argmax(weights, -1) == jnp.arange(L)[::-1][None, :]))
        result["attention_example"] = np.asarray(weights[0])
    return result


def run(quick=False):
    settings = dict(L=5, hidden=16, heads=1, steps=80, batch=32, lr=1e-2) if quick else \
        dict(L=12, hidden=64, heads=2, steps=3000, batch=64, lr=3e-3)
    return {"attention": train_and_test(True, **settings), "no attention": train_and_test(False, **settings)}, \
        settings


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny settings for the test suite")
    results, settings = run(quick=parser.parse_args().quick)
    print(f"reversing digit sequences; settings {settings}; chance token accuracy 0.1")
    print(f"| {'decoder':<12} | {'token acc.':>10} | {'sequence acc.':>13} | {'train loss':>10} | {'seconds':>7} |")
    print(f"|{'-' * 14}|{'-' * 12}|{'-' * 15}|{'-' * 12}|{'-' * 9}|")
    for name, r in results.items():
        print(f"| {name:<12} | {r['token_accuracy']:>10.4f} | {r['sequence_accuracy']:>13.4f} | "
              f"{r['final_train_loss']:>10.4f} | {r['seconds']:>7.1f} |")
    r = results["attention"]
    print(f"strongest attention weight on the mirrored input position: {r['attention_on_mirror']:.4f} of steps")
    print("attention weights of the first test sequence (rows: output step, columns: input position):")
    print(np.array2string(r["attention_example"], precision=2, suppress_small=True, max_line_width=150))


if __name__ == "__main__":
    main()
