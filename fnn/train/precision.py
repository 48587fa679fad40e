"""Mixed precision: compute in bfloat16 (or float16), keep parameters and optimizer state in float32.

    apply_mp = mixed_precision(apply, compute_dtype=jnp.bfloat16)

``apply_mp(params, x, **kw)`` casts the floating-point leaves of ``params`` and the inputs to ``compute_dtype``,
runs ``apply``, and casts the floating-point outputs back to ``output_dtype`` (float32). Because the casts are
ordinary differentiable operations, ``jax.grad`` of a loss through ``apply_mp`` returns float32 gradients for the
float32 master parameters, and the optimizer's state stays float32: the usual "master weights" recipe
(Micikevicius et al., "Mixed precision training", ICLR 2018, sec. 3.1). bfloat16 has float32's exponent range, so no
loss scaling is needed (sec. 3.2 applies to float16 only; fnn does not scale losses).

Integer and boolean leaves (labels, token ids, masks) and stateful layers' state pass through unchanged.
"""
from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp

__all__ = ["mixed_precision", "cast_floating"]


def cast_floating(tree: Any, dtype) -> Any:
    """Cast every floating-point leaf of ``tree`` to ``dtype``; other leaves are returned unchanged."""
    def cast(x):
        if isinstance(x, (jax.Array,)) or hasattr(x, "dtype"):
            return x.astype(dtype) if jnp.issubdtype(x.dtype, jnp.floating) else x
        return x
    return jax.tree.map(cast, tree)


def mixed_precision(apply: Callable, compute_dtype=jnp.bfloat16, output_dtype=jnp.float32) -> Callable:
    """Wrap ``apply`` to compute in ``compute_dtype`` with float32 master parameters.

    Args:
      apply: a layer's ``apply(params, inputs, **kwargs)``.
      compute_dtype: the dtype of the forward computation (``jnp.bfloat16`` or ``jnp.float16``).
      output_dtype: the dtype the outputs are cast back to (float32, so losses are summed accurately).

    Returns:
      ``apply_mp(params, inputs, **kwargs)`` with the same signature and output structure as ``apply``
      (``(outputs, state)`` when called with ``state=``; the state is returned in its own dtype).

    Example:
      >>> import jax
      >>> from fnn import layers
      >>> model = layers.Dense(3)
      >>> _, params = model.init(jax.random.key(0), (-1, 4))
      >>> y = mixed_precision(model.apply)(params, jnp.ones((2, 4)))   # bfloat16 inside, float32 out
      >>> y.dtype, params.W.dtype
      (dtype('float32'), dtype('float32'))
    """
    if not jnp.issubdtype(jnp.dtype(compute_dtype), jnp.floating):
        raise ValueError(f"mixed_precision: expected a floating compute dtype such as jnp.bfloat16, "
                         f"got {compute_dtype!r}")

    def apply_mp(params, inputs, **kwargs):
        out = apply(cast_floating(params, compute_dtype), cast_floating(inputs, compute_dtype), **kwargs)
        if kwargs.get("state") is not None:
            y, state = out
            # Keep the state's own dtypes (running averages stay float32 across steps).
            state = jax.tree.map(lambda new, old: new.astype(old.dtype), state, kwargs["state"])
            return cast_floating(y, output_dtype), state
        return cast_floating(out, output_dtype)

    return apply_mp
