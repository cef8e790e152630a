"""Plinth: a Kubernetes operator for distributed PyTorch, AutoML sweeps and Triton serving."""
