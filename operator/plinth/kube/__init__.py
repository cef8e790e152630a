"""The only layer that talks to the Kubernetes API server: server-side apply, reads, events."""
