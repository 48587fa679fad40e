"""The classic material: threshold units and the perceptron, universal approximation, annealing and
Cauchy training, RBF networks, autoencoders and pre-training, a conditional GAN. Loaded on first use.

This file only re-exports, grouped by module: the table of contents of ``fnn.classic``.
"""
# isort: skip_file
# --- threshold units, the perceptron, universal approximation (fnn/classic/neurons.py) ------------------------------
from fnn.classic.neurons import (
    GATES, logic_gate, TLUParams, tlu, PerceptronResult, perceptron_train, UAResult, universal_approximation,
)

# --- simulated annealing, Cauchy training (fnn/classic/annealing.py) ------------------------------------------------
from fnn.classic.annealing import (
    AnnealResult, boltzmann_temperature, cauchy_temperature, gaussian_step, cauchy_step, simulated_annealing,
    cauchy_training, mixed_training,
)

# --- radial-basis-function networks (fnn/classic/rbf.py) ------------------------------------------------------------
from fnn.classic.rbf import (
    RBFParams, RBFNetwork, rbf_features, rbf_apply, sample_centers, kmeans, rbf_widths, design_matrix,
    solve_output_weights, lms_output_weights, fit_rbf, fine_tune_rbf,
)

# --- the RBF article's methods and the dynamics of a learned map (fnn/classic/rbf_article.py, rbf_dynamics.py) -----
from fnn.classic.rbf_article import (
    gaussian_units, projection_train, OLSResult, ols_select, mahalanobis_units, local_linear_design,
    fit_local_linear, local_linear_apply, curvature_penalty, regularized_weights, logistic_protocol,
)
from fnn.classic.rbf_dynamics import (
    lyapunov_exponent, iterate_map, steps_to_error, predicted_horizon, control_data, fit_control_model, control_orbit,
)

# --- autoencoders (fnn/classic/autoencoders.py) ---------------------------------------------------------------------
from fnn.classic.autoencoders import (
    AutoencoderParams, Autoencoder, autoencoder, masking_noise, gaussian_noise, squared_error,
    bernoulli_cross_entropy, kl_sparsity, l1_sparsity, contractive_penalty, autoencoder_objective,
    train_autoencoder,
)

# --- greedy layer-wise pre-training and fine-tuning (fnn/classic/pretraining.py) ------------------------------------
from fnn.classic.pretraining import (
    pretrain_stack, stack_encoders, load_encoders, fine_tune,
)

# --- a conditional GAN (fnn/classic/gan.py) -------------------------------------------------------------------------
from fnn.classic.gan import (
    CGAN, CGANParams, conditional_gan, generate, discriminate, discriminator_loss, generator_loss, train_cgan,
    ring_of_gaussians,
)

# --- the modules themselves (``fnn.classic.<module>``) --------------------------------------------------
from fnn.classic import neurons, annealing, rbf, rbf_article, rbf_dynamics, autoencoders, pretraining, gan

__all__ = [
    "GATES", "logic_gate", "TLUParams", "tlu", "PerceptronResult", "perceptron_train", "UAResult",
    "universal_approximation", "AnnealResult", "boltzmann_temperature", "cauchy_temperature", "gaussian_step",
    "cauchy_step", "simulated_annealing", "cauchy_training", "mixed_training", "RBFParams", "RBFNetwork",
    "rbf_features", "rbf_apply", "sample_centers", "kmeans", "rbf_widths", "design_matrix",
    "solve_output_weights", "lms_output_weights", "fit_rbf", "fine_tune_rbf", "gaussian_units",
    "projection_train", "OLSResult", "ols_select", "mahalanobis_units", "local_linear_design", "fit_local_linear",
    "local_linear_apply", "curvature_penalty", "regularized_weights", "logistic_protocol", "lyapunov_exponent",
    "iterate_map", "steps_to_error", "predicted_horizon", "control_data", "fit_control_model", "control_orbit",
    "AutoencoderParams",
    "Autoencoder", "autoencoder", "masking_noise", "gaussian_noise", "squared_error", "bernoulli_cross_entropy",
    "kl_sparsity", "l1_sparsity", "contractive_penalty", "autoencoder_objective", "train_autoencoder",
    "pretrain_stack", "stack_encoders", "load_encoders", "fine_tune", "CGAN", "CGANParams", "conditional_gan",
    "generate", "discriminate", "discriminator_loss", "generator_loss", "train_cgan", "ring_of_gaussians",
    "neurons", "annealing", "rbf", "rbf_article", "rbf_dynamics", "autoencoders", "pretraining", "gan",
]
