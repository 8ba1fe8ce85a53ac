"""Custom CUDA kernels (sources in the package's kernels/ folder) and the torch references that define them."""
