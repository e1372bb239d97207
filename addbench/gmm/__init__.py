"""The unit world: a class-conditional Gaussian mixture whose diffused density, score, CFG and PF-ODE are exact.

It is registered as the base ``gmm`` (:class:`addbench.gmm.base.GMMBase`), so the distiller plug-ins train on it
unchanged, and every sample can be scored against the truth (:func:`score`) and drawn (:func:`scatter_png`).

- ``mixture.py``  the world: ``make_mixture(classes, components, dim, seed)`` -> ``Mixture``
- ``captions.py`` ``"class <k>"`` captions, ``""`` = unconditional: ``prompts(n, seed)``, ``parse_caption``
- ``analytic.py`` exact ε / score / E[x0 | x_t] / CFG / log-density / samples (float64)
- ``network.py``  ``GMMDenoiser``: exact ε + a zero-initialised MLP residual (teacher, students, fake scores)
- ``base.py``     ``GMMBase``: the ``Base`` adapter
- ``data.py``     ``prompts=gmm:N`` / ``real_images=gmm:N`` training data
- ``sample.py``   ``sample_points(base, classes, seeds, sampler)`` with the project's sampling loop
- ``metrics.py``  ``score(samples, classes, mixture)``: mode weights, means, covariances, energy / sliced W2
- ``plot.py``     ``scatter_png(path, panels, mixture)``; ``python -m addbench.gmm.plot``
"""
from __future__ import annotations

from addbench.gmm.captions import UNCOND, caption, parse_caption, prompts
from addbench.gmm.mixture import Mixture, make_mixture

# The unit world's training budget (as distillers/budget.py's TOY_BUDGET): a few seconds of CPU per method.
GMM_STEPS = 200  # generator steps
GMM_BATCH = 128  # points per generator step
GMM_BUDGET = {
    "batch": GMM_BATCH,
    "budget_images": GMM_BATCH * GMM_STEPS,  # 25,600 generated points
    "resolution": 1,  # ignored: a gmm latent is (D,) whatever the size
    "prompts": "gmm:20000",  # captions drawn from the class prior
    "real_images": "gmm:20000",  # exact samples with their captions
    "seed": 0,
    "warmup_images": GMM_BATCH * 20,
}

_LAZY = {"GMMBase": "addbench.gmm.base", "GMMDenoiser": "addbench.gmm.network", "score": "addbench.gmm.metrics",
         "scatter_png": "addbench.gmm.plot", "sample_points": "addbench.gmm.sample"}


def __getattr__(name: str):  # the network and the base import diffusers: only when asked for
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'addbench.gmm' has no attribute {name!r}")


__all__ = ["GMM_BUDGET", "GMMBase", "GMMDenoiser", "Mixture", "UNCOND", "caption", "make_mixture", "parse_caption",
           "prompts", "sample_points", "scatter_png", "score"]
