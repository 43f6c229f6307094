"""Skeleton layouts, the one-hot pose image codec, temporal smoothing of decoded keypoints, and
reference-pose conditioning."""

from hotdance_jax.pose.onehot import decode, decode_settings, encode, jit_decode
from hotdance_jax.pose.reference import (
    KEYFRAME_KINDS,
    prefix_frames,
    random_known_frames,
    reference_images,
    reference_mask,
    reference_pose,
)
from hotdance_jax.pose.skeletons import (
    BODY_25,
    COCO_17,
    DWM_23,
    OPENPOSE_18,
    OPENPOSE_18_HANDS,
    SKELETONS,
    Skeleton,
    body_of,
    flip_horizontal,
    pipeline_skeleton,
    skeleton_by_name,
    skeleton_of,
    to_openpose18,
    wholebody_to_openpose18_hands,
    with_hands,
)
from hotdance_jax.pose.smoothing import decoded_poses, smooth, smooth_settings

__all__ = [
    "BODY_25",
    "COCO_17",
    "DWM_23",
    "KEYFRAME_KINDS",
    "OPENPOSE_18",
    "OPENPOSE_18_HANDS",
    "SKELETONS",
    "Skeleton",
    "body_of",
    "decode",
    "decode_settings",
    "decoded_poses",
    "encode",
    "flip_horizontal",
    "jit_decode",
    "pipeline_skeleton",
    "prefix_frames",
    "random_known_frames",
    "reference_images",
    "reference_mask",
    "reference_pose",
    "skeleton_by_name",
    "skeleton_of",
    "smooth",
    "smooth_settings",
    "to_openpose18",
    "wholebody_to_openpose18_hands",
    "with_hands",
]
