"""Offline evaluation: synthetic benchmark bags, replay through the node logic, metrics and reports.

synthetic    the concept world (coloured shapes, hard negatives), deterministic by seed
benchmark    world -> camera bag + ground truth JSON (``sam3-ros make-bag``)
bags         rosbag2 read/write with our typestore
groundtruth  SA-Co/VEval / YTVIS JSON: write and read
replay       processors and lockstep / realtime pacing
node_process the real node in a subprocess, driven over DDS-direct
metrics      pmF1, IL_MCC, cgF1 (as the official SAM 3 evaluator); ``tracking``: HOTA, IDF1, ID switches
evaluate     replay -> outputs bag -> scores;  report: report.json/.md, plots;  overlay: mp4
"""
