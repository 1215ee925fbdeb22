"""Geometry below everything else: rotations in torch over arbitrary leading dimensions."""

from cryomotion.geometry.rotations import (
    geodesic_angle,
    gram_schmidt,
    matrix_to_quaternion,
    matrix_to_rotvec,
    matrix_to_six,
    quaternion_to_matrix,
    quaternion_to_rotvec,
    rotvec_to_matrix,
    skew,
)

__all__ = [
    "geodesic_angle",
    "gram_schmidt",
    "matrix_to_quaternion",
    "matrix_to_rotvec",
    "matrix_to_six",
    "quaternion_to_matrix",
    "quaternion_to_rotvec",
    "rotvec_to_matrix",
    "skew",
]
