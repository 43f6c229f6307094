"""Distribution distances on feature vectors: FID (Frechet distance) and Div (diversity).

As in Bailando's and EDGE's evaluation, features are first standardised by the reference set's
mean and standard deviation (per dimension), and both scores are computed on the standardised
vectors, so every dimension counts in units of the real dances' spread.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial.distance import pdist

from hotdance_jax.errors import InputError

MIN_STD = 1e-9  # reference dimensions with a smaller spread are constant: left out


def standardise(reference: np.ndarray, *others: np.ndarray) -> list[np.ndarray]:
    """(N, D) reference and (M_i, D) other feature sets, each minus the reference mean and over
    the reference standard deviation, without the dimensions constant over the reference
    (dividing by their zero spread would be meaningless). Returns [reference, *others];
    InputError when every dimension is constant."""
    mean, std = reference.mean(axis=0), reference.std(axis=0)
    keep = std > MIN_STD
    if not keep.any():
        raise InputError(f"no feature varies across the {len(reference)} reference samples")
    return [(x[:, keep] - mean[keep]) / std[keep] for x in (reference, *others)]


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Frechet distance between Gaussians fitted to (N, D) and (M, D) samples (N, M >= 2):
    |mu_a - mu_b|^2 + tr(S_a + S_b - 2 (S_a S_b)^(1/2)), S the unbiased covariances.

    tr((S_a S_b)^(1/2)) is the sum of square roots of the eigenvalues of the symmetric
    S_a^(1/2) S_b S_a^(1/2), which are real and >= 0 (round-off clipped), so no complex sqrtm.
    """
    cov_a, cov_b = np.atleast_2d(np.cov(a, rowvar=False)), np.atleast_2d(np.cov(b, rowvar=False))
    root_a = _psd_sqrt(cov_a)
    cross = np.linalg.eigvalsh(root_a @ cov_b @ root_a)
    diff = a.mean(axis=0) - b.mean(axis=0)
    distance = diff @ diff + np.trace(cov_a) + np.trace(cov_b) - 2 * np.sqrt(
        np.clip(cross, 0.0, None)).sum()
    return float(max(distance, 0.0))


def _psd_sqrt(matrix: np.ndarray) -> np.ndarray:
    """The symmetric square root of a symmetric positive semi-definite (D, D) matrix."""
    values, vectors = np.linalg.eigh(matrix)
    return (vectors * np.sqrt(np.clip(values, 0.0, None))) @ vectors.T


def fid(reference: np.ndarray, generated: np.ndarray) -> float:
    """FID of (M, D) generated features against (N, D) reference features, both standardised by
    the reference (see `standardise`)."""
    reference, generated = standardise(reference, generated)
    return frechet_distance(generated, reference)


def diversity(features: np.ndarray) -> float:
    """Div: the mean Euclidean distance over all pairs of (N, D) feature vectors (N >= 2)."""
    return float(pdist(features).mean())
