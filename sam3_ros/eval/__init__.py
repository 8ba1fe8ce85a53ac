"""Offline evaluation: synthetic benchmark bags, replay through the node logic, metrics and reports."""
