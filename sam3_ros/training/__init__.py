"""Training of the built-in ``toy`` model on the synthetic concept world (offline; no ROS)."""
