"""Measuring models: evaluation, the model card, and the benchmarks that print their figures."""
