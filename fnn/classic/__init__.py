"""The classic material: threshold units and the perceptron, hand-wired gates and adders, universal approximation,
annealing (Cauchy training, specific-heat cooling), the network-paralysis remedy, evolution strategies, RBF networks,
autoencoders, pre-training and sampling, RBMs and deep belief nets, recursive networks, the Neural Turing Machine, a
conditional GAN. Loaded on first use.

This file only re-exports, grouped by module: the table of contents of ``fnn.classic``.
"""
# isort: skip_file
# --- threshold units, the perceptron, universal approximation (fnn/classic/neurons.py) ------------------------------
from fnn.classic.neurons import (
    GATES, logic_gate, TLUParams, tlu, PerceptronResult, perceptron_train, UAResult, universal_approximation,
)

# --- hand-wired perceptron networks: NAND, adders, threshold gates, the XOR net (fnn/classic/gates.py) -----------
from fnn.classic.gates import (
    NAND, nand, Unit, Circuit, binary_inputs, run_circuit, min_abs_net, sigmoid_deviation, half_adder,
    half_adder_circuit, ripple_adder_circuit, ripple_add, THRESHOLD_GATES, MARGIN_GATES, xor_network, DIGIT_BITS,
    binary_output_layer, to_bits, from_bits,
)

# --- simulated annealing, Cauchy training (fnn/classic/annealing.py) ------------------------------------------------
from fnn.classic.annealing import (
    AnnealResult, boltzmann_temperature, cauchy_temperature, gaussian_step, cauchy_step, simulated_annealing,
    cauchy_training, mixed_training,
)
# --- specific-heat annealing: cool slowly where C(T) = Var[E] / T^2 peaks (fnn/classic/specific_heat.py) ----------
from fnn.classic.specific_heat import (
    ThermalStats, SpecificHeatResult, thermal_stats, specific_heat_annealing, next_temperature,
)

# --- network paralysis: saturated units and shrinking their weights (fnn/classic/paralysis.py) ----------------------
from fnn.classic.paralysis import (
    SATURATION_THRESHOLDS, net_inputs, saturated_units, squash_weights,
)

# --- evolution strategies, the population in one vmap (fnn/classic/evolution.py) -----------------------------------
from fnn.classic.evolution import (
    ESResult, population_loss, select_best, centered_ranks, es_gradient, evolution_strategy, openai_es,
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

# --- sampling from a denoising autoencoder: the corruption/reconstruction chain (fnn/classic/dae_sampling.py) -------
from fnn.classic.dae_sampling import (
    salt_and_pepper_noise, bernoulli_sample, dae_reconstruction, dae_chain_step, ChainResult, dae_chain,
    nearest_distance, class_histogram,
)

# --- greedy layer-wise pre-training and fine-tuning (fnn/classic/pretraining.py) ------------------------------------
from fnn.classic.pretraining import (
    pretrain_stack, stack_encoders, load_encoders, fine_tune,
)

# --- restricted Boltzmann machines and deep belief nets (fnn/classic/rbm.py, dbn.py); the rest as rbm.<name> ------
from fnn.classic.rbm import RBMParams, RBMResult, init_rbm, cd_gradient, pcd_gradient, train_rbm
from fnn.classic.dbn import pretrain_dbn, dbn_sample

# --- a conditional GAN (fnn/classic/gan.py) -------------------------------------------------------------------------
from fnn.classic.gan import (
    CGAN, CGANParams, conditional_gan, generate, discriminate, discriminator_loss, generator_loss, train_cgan,
    ring_of_gaussians,
)

# --- recursive (tree-structured) networks and subtraction trees (fnn/classic/recursive.py) -------------------------
from fnn.classic.recursive import (
    TreeBatch, RecursiveParams, tree_size, tree_height, encode_trees, init_recursive, node_states, root_states,
    tree_logits, random_expression, expression_value, expression_tokens, encode_sequences, expression_dataset,
)

# --- the Neural Turing Machine: addressing eqs. 2-9, the scanned model (fnn/classic/ntm.py) ----------------------
from fnn.classic.ntm import (
    content_weights, interpolate, shift, sharpen, read, write, address, HeadOutputs, head_outputs, head_sizes,
    NTMParams, NTMState, NTM, neural_turing_machine,
)

# --- the modules themselves (``fnn.classic.<module>``) --------------------------------------------------
from fnn.classic import (
    neurons, gates, annealing, specific_heat, paralysis, evolution, rbf, rbf_article, rbf_dynamics, autoencoders,
    dae_sampling, pretraining, rbm, dbn, recursive, ntm, gan,
)

__all__ = [
    "GATES", "logic_gate", "TLUParams", "tlu", "PerceptronResult", "perceptron_train", "UAResult",
    "universal_approximation", "NAND", "nand", "Unit", "Circuit", "binary_inputs", "run_circuit", "min_abs_net",
    "sigmoid_deviation", "half_adder", "half_adder_circuit", "ripple_adder_circuit", "ripple_add", "THRESHOLD_GATES",
    "MARGIN_GATES", "xor_network", "DIGIT_BITS", "binary_output_layer", "to_bits", "from_bits",
    "AnnealResult", "boltzmann_temperature", "cauchy_temperature", "gaussian_step",
    "cauchy_step", "simulated_annealing", "cauchy_training", "mixed_training", "ThermalStats", "SpecificHeatResult",
    "thermal_stats", "specific_heat_annealing", "next_temperature", "SATURATION_THRESHOLDS", "net_inputs",
    "saturated_units", "squash_weights", "RBFParams", "RBFNetwork",
    "rbf_features", "rbf_apply", "sample_centers", "kmeans", "rbf_widths", "design_matrix",
    "solve_output_weights", "lms_output_weights", "fit_rbf", "fine_tune_rbf", "gaussian_units",
    "projection_train", "OLSResult", "ols_select", "mahalanobis_units", "local_linear_design", "fit_local_linear",
    "local_linear_apply", "curvature_penalty", "regularized_weights", "logistic_protocol", "lyapunov_exponent",
    "iterate_map", "steps_to_error", "predicted_horizon", "control_data", "fit_control_model", "control_orbit",
    "AutoencoderParams",
    "Autoencoder", "autoencoder", "masking_noise", "gaussian_noise", "squared_error", "bernoulli_cross_entropy",
    "kl_sparsity", "l1_sparsity", "contractive_penalty", "autoencoder_objective", "train_autoencoder",
    "salt_and_pepper_noise", "bernoulli_sample", "dae_reconstruction", "dae_chain_step", "ChainResult", "dae_chain",
    "nearest_distance", "class_histogram", "dae_sampling",
    "pretrain_stack", "stack_encoders", "load_encoders", "fine_tune", "CGAN", "CGANParams", "conditional_gan",
    "generate", "discriminate", "discriminator_loss", "generator_loss", "train_cgan", "ring_of_gaussians",
    "ESResult", "population_loss", "select_best", "centered_ranks", "es_gradient", "evolution_strategy", "openai_es",
    "neurons", "gates", "annealing", "specific_heat", "paralysis", "evolution", "rbf", "rbf_article", "rbf_dynamics",
    "autoencoders", "pretraining", "gan",
    "TreeBatch", "RecursiveParams", "tree_size", "tree_height", "encode_trees", "init_recursive", "node_states",
    "root_states", "tree_logits", "random_expression", "expression_value", "expression_tokens", "encode_sequences",
    "expression_dataset", "recursive",
    "RBMParams", "RBMResult", "init_rbm", "cd_gradient", "pcd_gradient", "train_rbm", "pretrain_dbn", "dbn_sample",
    "rbm", "dbn",
    "content_weights", "interpolate", "shift", "sharpen", "read", "write", "address", "HeadOutputs", "head_outputs",
    "head_sizes", "NTMParams", "NTMState", "NTM", "neural_turing_machine", "ntm",
]
