"""Custom CUDA kernels (sources in the repository's kernels/ folder) and the torch references that define them.

``ops`` is the entry point: kernels for CUDA tensors, references otherwise. ``reference`` defines the
results, ``nvrtc`` compiles the sources, ``launch`` runs them on the torch stream, ``cuda_ops`` wraps them.
"""
