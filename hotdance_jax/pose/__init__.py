"""Skeleton layouts, the one-hot pose image codec, and reference-pose conditioning."""

from hotdance_jax.pose.onehot import decode, decode_settings, encode, jit_decode
from hotdance_jax.pose.reference import reference_images, reference_mask, reference_pose
from hotdance_jax.pose.skeletons import (
    BODY_25,
    COCO_17,
    DWM_23,
    OPENPOSE_18,
    SKELETONS,
    Skeleton,
    flip_horizontal,
    to_openpose18,
)

__all__ = [
    "BODY_25",
    "COCO_17",
    "DWM_23",
    "OPENPOSE_18",
    "SKELETONS",
    "Skeleton",
    "decode",
    "decode_settings",
    "encode",
    "flip_horizontal",
    "jit_decode",
    "reference_images",
    "reference_mask",
    "reference_pose",
    "to_openpose18",
]
