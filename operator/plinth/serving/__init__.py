"""Triton serving: model configuration, model repository layout, metrics and scaling policy."""
