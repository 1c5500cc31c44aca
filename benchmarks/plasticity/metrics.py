"""Independent batch definitions of the plasticity statistics, used to cross-check the learner's
telemetry (`lifelong.model.telemetry`) on the same probe activations.

Definitions as in /work/shared/reference/plasticity.md (Dohare et al. 2024; Roy & Vetterli 2007).
"""

from __future__ import annotations

import numpy as np


def effective_rank(H: np.ndarray) -> float:
    """exp(entropy of the normalised singular values) of the uncentred n x d activation matrix."""
    s = np.linalg.svd(np.asarray(H, dtype=np.float64), compute_uv=False)
    total = s.sum()
    if total <= 0:
        return 0.0
    p = s[s > 0] / total
    return float(np.exp(-(p * np.log(p)).sum()))


def dead_fraction(H: np.ndarray) -> float:
    """Units with h > 0 on none of the inputs."""
    return float((~(np.asarray(H) > 0).any(axis=0)).mean())


def dormant_fraction(H: np.ndarray, below: float = 0.01) -> float:
    """Units active (h > 0) on fewer than `below` of the inputs."""
    return float(((np.asarray(H) > 0).mean(axis=0) < below).mean())
