"""fnn's layers, all in one namespace: ``from fnn import layers as stax`` is a drop-in for
``jax.example_libraries.stax`` (every public stax name is here), plus fnn's additions.

This file only re-exports; each layer is defined, documented and referenced in the module named below.
The layer contract (``Layer(init, apply)``, ``init_with_state``, the run-time keyword table ``KEYWORDS``) is
stated once, in :mod:`fnn.layers.base`.
Departures from stax are listed in docs/layers.md (most visibly: ``Dropout(rate)`` drops with probability
``rate``, stax keeps with probability ``rate``).
"""
# isort: skip_file
# ruff: noqa: F401

# --- the contract & combinators (fnn/layers/base.py) ------------------------------------------------------------
from fnn.layers.base import (
    KEYWORDS, COMMON_KEYWORDS, Layer, init_with_state, run_key, as_layer,
    serial, parallel, shape_dependent, residual,
    FanOut, FanInSum, FanInConcat, Identity,
)

# --- dense and element-wise (fnn/layers/dense.py); units (fnn/layers/units.py) ----------------------------------
from fnn.layers.dense import Dense, DenseParams, mlp, Flatten, Reshape, elementwise
from fnn.layers.units import Embedding, EmbeddingParams, Maxout, MaxoutParams, RBF, RBFParams

# --- conv (fnn/layers/conv.py) ---------------------------------------------------------------------------------
from fnn.layers.conv import (
    ConvParams, GeneralConv, Conv, Conv1D, Conv3D,
    GeneralConvTranspose, ConvTranspose, Conv1DTranspose,
)

# --- pooling (fnn/layers/pooling.py) ---------------------------------------------------------------------------
from fnn.layers.pooling import MaxPool, AvgPool, SumPool, GlobalAvgPool, GlobalMaxPool

# --- normalization (fnn/layers/normalization.py) ---------------------------------------------------------------
from fnn.layers.normalization import (
    BatchNorm, BatchNormParams, BatchNormState, population_statistics,
    LayerNorm, LayerNormParams, standardize,
)

# --- regularization (fnn/layers/dropout.py) --------------------------------------------------------------------
from fnn.layers.dropout import Dropout, mc_dropout_predict

# --- augmentation (fnn/layers/augment.py) ---------------------------------------------------------------------
from fnn.layers.augment import RandomCrop, RandomFlip, random_crop, random_flip, augment_images

# --- recurrent (fnn/layers/recurrent.py) and attention (fnn/layers/attention.py) ------------------------------
from fnn.layers.recurrent import (
    Cell, SimpleRNNCell, SimpleRNNParams, LSTMCell, LSTMParams, LSTMState, GRUCell, GRUParams, RNN, RNNLayer,
    Bidirectional, BidirectionalParams, sequence_mask,
)
from fnn.layers.attention import MultiHeadAttention, MultiHeadAttentionParams, dot_product_attention, causal_mask

# --- model summary (fnn/layers/summary.py) ---------------------------------------------------------------------
from fnn.layers.summary import summary, Summary, SummaryRow

# --- activations as layers (fnn/layers/dense.py) ---------------------------------------------------------------
from fnn.layers.dense import (
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

# --- the modules themselves (``fnn.layers.<module>``) ---------------------------------------------------------
from fnn.layers import base, dense, units, conv, pooling, normalization, dropout, recurrent, attention, augment

__all__ = [
    # contract & combinators
    "KEYWORDS", "COMMON_KEYWORDS", "Layer", "init_with_state", "run_key", "as_layer", "serial", "parallel",
    "shape_dependent", "residual",
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
    "Dropout", "mc_dropout_predict",
    # augmentation
    "RandomCrop", "RandomFlip", "random_crop", "random_flip", "augment_images", "augment",
    # recurrent and attention
    "Cell", "SimpleRNNCell", "SimpleRNNParams", "LSTMCell", "LSTMParams", "LSTMState", "GRUCell", "GRUParams", "RNN",
    "RNNLayer", "Bidirectional", "BidirectionalParams", "sequence_mask", "MultiHeadAttention",
    "MultiHeadAttentionParams", "dot_product_attention", "causal_mask",
    # model summary
    "summary", "Summary", "SummaryRow",
    # activations
    "Relu", "Sigmoid", "Tanh", "Elu", "LeakyRelu", "Softplus", "Gelu", "Selu", "Softmax", "LogSoftmax", "Step",
    "Sign", "Exp",
    # stax's function aliases
    "relu", "sigmoid", "elu", "leaky_relu", "softplus", "gelu", "selu", "softmax", "log_softmax", "logsoftmax",
    "glorot_normal", "glorot", "normal", "randn", "ones", "zeros",
    # modules
    "base", "dense", "units", "conv", "pooling", "normalization", "dropout", "recurrent", "attention",
]
