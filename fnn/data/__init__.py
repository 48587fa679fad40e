"""Data: real data sets, toy problems and preprocessing; NumPy arrays in, NumPy arrays out.

This file only re-exports, grouped by module: the table of contents of ``fnn.data``.
"""
# isort: skip_file
# --- real data (fnn/data/datasets.py) -------------------------------------------------------------------------------
from fnn.data.datasets import (
    FASHION_MNIST_DIR, MNIST_DIR, load_digits, read_idx, load_fashion_mnist, load_mnist,
)

# --- toy problems (fnn/data/toy.py) ---------------------------------------------------------------------------------
from fnn.data.toy import (
    xor, two_spirals, moons, logistic_map, logistic_map_pairs,
)

# --- preprocessing (fnn/data/preprocessing.py) ----------------------------------------------------------------------
from fnn.data.preprocessing import (
    numpy_rng, train_val_test_split, Stats, fit_standardizer, standardize, unstandardize, one_hot, validate_xy,
)

# --- the modules themselves (``fnn.data.<module>``) --------------------------------------------------
from fnn.data import datasets, toy, preprocessing

__all__ = [
    "FASHION_MNIST_DIR", "MNIST_DIR", "load_digits", "read_idx", "load_fashion_mnist", "load_mnist", "xor",
    "two_spirals", "moons", "logistic_map", "logistic_map_pairs", "numpy_rng", "train_val_test_split", "Stats",
    "fit_standardizer", "standardize", "unstandardize", "one_hot", "validate_xy", "datasets", "toy",
    "preprocessing",
]
