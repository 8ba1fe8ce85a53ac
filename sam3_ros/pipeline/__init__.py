"""Between transport and engine: latest-frame slots per camera, the node logic, GPU workers. No ROS here."""
