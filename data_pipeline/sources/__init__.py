"""Data sources: each turns a raw dataset into `Performance`s (see base.py).

  aistpp     AIST++ keypoints2d (a camera view) or keypoints3d projected (AIST++2D), 60 fps
  dwm        Dance with Melody: 3D mocap seen by a fixed virtual front camera, 25 fps
  wild       per-frame OpenPose/DWPose JSON or npz per video, cleaned as in the paper
  synthetic  a procedural dancer on procedurally synthesised drum music (the built-in default)
"""

from data_pipeline.sources import aistpp, dwm, synthetic, wild

SOURCES = {
    "aistpp": aistpp.performances,
    "dwm": dwm.performances,
    "synthetic": synthetic.performances,
    "wild": wild.performances,
}

# Sources that give hands, for config.pose.skeleton = "openpose18_hands" (the others: body only).
HAND_SOURCES = frozenset({"synthetic", "wild"})

# Sources whose raw files the build writes itself from the config (their files are not inputs).
GENERATED_SOURCES = frozenset({"synthetic"})

# Sources whose inputs are independent videos: `entries(root)` lists them in order and
# `reader(root, data_config)` builds one at a time. The build splits them into parts over processes
# and hosts and skips a video with bad input (data_pipeline/build.py); other sources are one part.
PARTITIONED = {"wild": wild}
