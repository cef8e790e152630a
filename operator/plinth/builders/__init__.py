"""Pure builders: a typed spec plus observed state in, desired child manifests out."""
