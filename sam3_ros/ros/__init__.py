"""Transports: the rclpy node (robots) and DDS-direct over Cyclone DDS (no ROS install needed)."""
