"""Serving with NVIDIA Triton, pure: model configuration and repository layout, reading
Triton's metrics, the scaling policy, canary gates and the autoscaler backends."""
