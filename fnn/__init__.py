"""fnn: a functional neural-network toolkit on JAX (placeholder table of contents, filled in below)."""
