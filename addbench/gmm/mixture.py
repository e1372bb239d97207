"""The unit world's data law: K classes, each a mixture of M Gaussian components in dimension D.

The default world (``make_mixture()``) is 2-D: 4 classes x 2 components = 8 modes on a ring of radius
0.7; mode j belongs to class j mod 4, so each class holds two *opposite* modes and its mean lies near the
origin, far from both (a sampler that collapses to the class mean is obvious). Each mode has a full
covariance, std 0.08 along the ring and 0.06 across it. Class priors are uniform; the component weights
are drawn from the seed in [0.35, 0.65]. Any other D: means on a sphere of radius ``radius`` (farthest
points among seeded candidates), random rotations and per-axis stds in [0.75, 1.25] x ``std``. Everything
is float64 numpy and a pure function of the arguments.
"""
from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np

from addbench.errors import AddbenchError


@dataclass(frozen=True, eq=False)
class Mixture:
    """``means`` (K, M, D), ``covs`` (K, M, D, D), ``weights`` (K, M) (each row sums to 1), ``class_prior`` (K,)."""

    means: np.ndarray
    covs: np.ndarray
    weights: np.ndarray
    class_prior: np.ndarray

    def __post_init__(self):
        k, m, d = self.means.shape
        if self.covs.shape != (k, m, d, d) or self.weights.shape != (k, m) or self.class_prior.shape != (k,):
            raise AddbenchError(f"gmm mixture shapes disagree: means {self.means.shape}, covs {self.covs.shape}, "
                                f"weights {self.weights.shape}, prior {self.class_prior.shape}")
        if not np.allclose(self.weights.sum(1), 1) or not np.isclose(self.class_prior.sum(), 1):
            raise AddbenchError("gmm mixture: component weights (per class) and class priors must each sum to 1")

    @property
    def n_classes(self) -> int:
        return self.means.shape[0]

    @property
    def n_components(self) -> int:
        return self.means.shape[1]

    @property
    def dim(self) -> int:
        return self.means.shape[2]

    # ---- flat view: one row per mode (class-major), as the analytic code uses it ------------------------
    def flat_means(self) -> np.ndarray:
        return self.means.reshape(-1, self.dim)

    def flat_covs(self) -> np.ndarray:
        return self.covs.reshape(-1, self.dim, self.dim)

    def mode_class(self) -> np.ndarray:
        """(K*M,) class of each mode."""
        return np.repeat(np.arange(self.n_classes), self.n_components)

    def mode_weights(self) -> np.ndarray:
        """(K+1, K*M): row k = the weights of class k's modes (0 elsewhere); row K = the unconditional law."""
        k, m = self.weights.shape
        table = np.zeros((k + 1, k * m))
        for c in range(k):
            table[c, c * m:(c + 1) * m] = self.weights[c]
        table[k] = (self.class_prior[:, None] * self.weights).reshape(-1)
        return table

    def to_dict(self) -> dict:
        return {"means": self.means.tolist(), "covs": self.covs.tolist(), "weights": self.weights.tolist(),
                "class_prior": self.class_prior.tolist()}

    @classmethod
    def from_dict(cls, d: dict) -> "Mixture":
        return cls(*(np.asarray(d[k], dtype=np.float64) for k in ("means", "covs", "weights", "class_prior")))

    def fingerprint(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)


def _rotation(rng: np.random.Generator, d: int) -> np.ndarray:
    q, r = np.linalg.qr(rng.standard_normal((d, d)))
    return q * np.sign(np.diag(r))


def _sphere_points(rng: np.random.Generator, n: int, d: int, radius: float) -> np.ndarray:
    cand = rng.standard_normal((64 * n, d))
    cand = radius * cand / np.linalg.norm(cand, axis=1, keepdims=True)
    chosen = [0]
    dist = np.linalg.norm(cand - cand[0], axis=1)
    for _ in range(n - 1):  # farthest-point selection: well separated modes in any D
        i = int(dist.argmax())
        chosen.append(i)
        dist = np.minimum(dist, np.linalg.norm(cand - cand[i], axis=1))
    return cand[chosen]


def _ring(n: int, radius: float, along: float, across: float) -> tuple[np.ndarray, np.ndarray]:
    angles = np.pi / n + 2 * np.pi * np.arange(n) / n
    u = np.stack([np.cos(angles), np.sin(angles)], 1)  # radial
    v = np.stack([-np.sin(angles), np.cos(angles)], 1)  # along the ring
    covs = along ** 2 * v[:, :, None] * v[:, None, :] + across ** 2 * u[:, :, None] * u[:, None, :]
    return radius * u, covs


def make_mixture(classes: int = 4, components: int = 2, dim: int = 2, seed: int = 0, radius: float = 0.7,
                 std: float = 0.07) -> Mixture:
    """A K-class, M-component world in dimension ``dim`` (module docstring); deterministic from ``seed``."""
    if classes < 1 or components < 1 or dim < 1:
        raise AddbenchError(f"gmm world needs classes, components, dim >= 1; got {classes}, {components}, {dim}")
    rng = np.random.default_rng(seed)
    n = classes * components
    if dim == 2:
        flat, covs = _ring(n, radius, along=std * 8 / 7, across=std * 6 / 7)
    else:
        flat = _sphere_points(rng, n, dim, radius)
        covs = np.stack([(q := _rotation(rng, dim)) @ np.diag((std * rng.uniform(0.75, 1.25, dim)) ** 2) @ q.T
                         for _ in range(n)])
    # mode j -> (class j mod K, component j // K): in 2-D a class's modes are spread around the ring
    order = np.array([[c + classes * m for m in range(components)] for c in range(classes)])
    w = rng.uniform(0.35, 0.65, (classes, components)) if components > 1 else np.ones((classes, 1))
    return Mixture(flat[order], covs[order], w / w.sum(1, keepdims=True), np.full(classes, 1.0 / classes))
