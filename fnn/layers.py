"""fnn's layers, all in one namespace: ``from fnn import layers as stax`` is a drop-in for
``jax.example_libraries.stax`` (every public stax name is here), plus fnn's additions.

This file only re-exports; each layer is defined, documented and referenced in the module named below.
The layer contract (``Layer(init, apply)``, ``init_with_state``) is stated once, in :mod:`fnn.core`.
Departures from stax are listed in docs/layers.md (most visibly: ``Dropout(rate)`` drops with probability
``rate``, stax keeps with probability ``rate``).
"""
# isort: skip_file
# ruff: noqa: F401

# --- contract & combinators (fnn/core.py) ----------------------------------------------------------------------
from fnn.core import (
    Layer, init_with_state, run_key,
    serial, parallel, shape_dependent, residual,
    FanOut, FanInSum, FanInConcat,
    Identity, Flatten, Reshape, elementwise,
)

# --- dense-like (fnn/core.py, fnn/units.py) --------------------------------------------------------------------
from fnn.core import Dense, DenseParams, mlp
from fnn.units import Embedding, EmbeddingParams, Maxout, MaxoutParams, RBF, RBFParams

# --- conv (fnn/conv.py) ----------------------------------------------------------------------------------------
from fnn.conv import (
    ConvParams, GeneralConv, Conv, Conv1D, Conv3D,
    GeneralConvTranspose, ConvTranspose, Conv1DTranspose,
)

# --- pooling (fnn/pooling.py) ----------------------------------------------------------------------------------
from fnn.pooling import MaxPool, AvgPool, SumPool, GlobalAvgPool, GlobalMaxPool

# --- normalization (fnn/normalization.py) ----------------------------------------------------------------------
from fnn.normalization import (
    BatchNorm, BatchNormParams, BatchNormState, population_statistics,
    LayerNorm, LayerNormParams, standardize,
)

# --- regularization (fnn/dropout.py) ---------------------------------------------------------------------------
from fnn.dropout import Dropout

# --- recurrent (fnn/recurrent.py) and attention (fnn/attention.py) --------------------------------------------
from fnn.recurrent import (
    Cell, SimpleRNNCell, SimpleRNNParams, LSTMCell, LSTMParams, LSTMState, GRUCell, GRUParams, RNN, RNNLayer,
    Bidirectional, BidirectionalParams, sequence_mask,
)
from fnn.attention import MultiHeadAttention, MultiHeadAttentionParams, dot_product_attention, causal_mask

# --- activations as layers (fnn/core.py) -----------------------------------------------------------------------
from fnn.core import (
    Relu, Sigmoid, Tanh, Elu, LeakyRelu, Softplus, Gelu, Selu, Softmax, LogSoftmax, Step, Sign, Exp,
)

# --- stax's function aliases (activations fnn/activations.py, initializers fnn/initializers.py) -----------------
from fnn.activations import (
    relu, sigmoid, elu, leaky_relu, softplus, gelu, selu, softmax, log_softmax,
)
from fnn.activations import log_softmax as logsoftmax
from fnn.initializers import glorot_normal, normal, ones, zeros
from fnn.initializers import glorot_normal as glorot
from fnn.initializers import normal as randn

__all__ = [
    # contract & combinators
    "Layer", "init_with_state", "run_key", "serial", "parallel", "shape_dependent", "residual",
    "FanOut", "FanInSum", "FanInConcat", "Identity", "Flatten", "Reshape", "elementwise",
    # dense-like
    "Dense", "DenseParams", "mlp", "Embedding", "EmbeddingParams", "Maxout", "MaxoutParams", "RBF", "RBFParams",
    # conv
    "ConvParams", "GeneralConv", "Conv", "Conv1D", "Conv3D", "GeneralConvTranspose", "ConvTranspose",
    "Conv1DTranspose",
    # pooling
    "MaxPool", "AvgPool", "SumPool", "GlobalAvgPool", "GlobalMaxPool",
    # normalization
    "BatchNorm", "BatchNormParams", "BatchNormState", "population_statistics", "LayerNorm", "LayerNormParams",
    "standardize",
    # regularization
    "Dropout",
    # recurrent and attention
    "Cell", "SimpleRNNCell", "SimpleRNNParams", "LSTMCell", "LSTMParams", "LSTMState", "GRUCell", "GRUParams", "RNN",
    "RNNLayer", "Bidirectional", "BidirectionalParams", "sequence_mask", "MultiHeadAttention",
    "MultiHeadAttentionParams", "dot_product_attention", "causal_mask",
    # activations
    "Relu", "Sigmoid", "Tanh", "Elu", "LeakyRelu", "Softplus", "Gelu", "Selu", "Softmax", "LogSoftmax", "Step",
    "Sign", "Exp",
    # stax's function aliases
    "relu", "sigmoid", "elu", "leaky_relu", "softplus", "gelu", "selu", "softmax", "log_softmax", "logsoftmax",
    "glorot_normal", "glorot", "normal", "randn", "ones", "zeros",
]
