"""Every distiller's ``gmm`` preset, trained in seconds on one CPU thread and scored against the exact law.

The bar (task brief): at its exported sampler the student's energy distance is at most a quarter of the teacher's
1-step one (same classes and seeds; the teacher collapses onto the class means, ED ~0.61), all 8 modes are
recovered and class accuracy is >= 0.9. ADD and ADP are also sampled at 4 steps through the sampler override
``{"steps": 4}`` (``addbench.bases.loading.apply_overrides``, i.e. ``--steps 4``); DMD2 and ADM train their own 4-step
students (``gen_steps=4``). DMD2 1-step starts from the DMD student (an ODE-pair pre-regressed generator told
t = 399: DMD2's SDXL 1-step recipe), ADM from the ADP student (DMDX).

What is NOT asserted, because it does not hold on this world at this budget (measured over training seeds 0 and 1;
see the report in the session that added this file):
- ADD at 4 steps meets the bar on only one of three training seeds (see test_add_four_steps for its weaker bar);
- ADD at 1 step: each class collapses onto one of its two modes (ED 0.6-1.2) with every readout tried;
- DMDX's ADP + ADM <= ADP alone (ADM from ADP is a little worse at 1 and 4 steps);
- ADD with both losses beating lambda_adv=0 (distillation alone keeps the teacher's 4-step quality as well or
  better), or beating init=random (on gmm ``init=random`` re-draws only the MLP residual: the exact ε part lives in
  buffers, so the "random" student still starts at the exact teacher plus noise; 4-step ED 0.150 / 0.124 vs
  0.123 / 0.124).

``GMM_EXACT_SEED=1 python -m pytest tests/gmm/test_distillers_exact.py`` re-runs everything with another training seed
(how the margins below were checked); the default is 0.
"""
from __future__ import annotations

import os

import numpy as np
import pytest
import torch

N = 800  # points per student (200 per class)
CLASSES = np.arange(N) % 4
SEEDS = list(range(10_000, 10_000 + N))  # sampling seeds, disjoint from the ODE pairs' noise
SEED = int(os.environ.get("GMM_EXACT_SEED", "0"))  # training seed
QUIET = ["tensorboard=false", "+progress=false", f"seed={SEED}"]
BAR = 0.25  # the student's ED must be <= BAR x the teacher's 1-step ED


def _metrics(base, sampler, steps=None) -> dict:
    from addbench.bases.loading import apply_overrides
    from addbench.gmm.metrics import score
    from addbench.gmm.sample import sample_points

    sampler = apply_overrides(sampler, {"steps": steps} if steps else None)
    x = sample_points(base, CLASSES, SEEDS, sampler)
    assert x.isfinite().all()
    return score(x, CLASSES, base.mixture, seed=1)


class World:
    """Trains each (method, overrides) once per module and caches its checkpoint and its scores."""

    def __init__(self, root):
        from addbench.bases.loading import load_base
        from addbench.gmm import prompts
        from addbench.train.odepairs import collect_ode_pairs

        self.root = root
        self.teacher = load_base("gmm", device="cpu")
        # 4096 25-step teacher pairs (the dmd preset's reg_pairs / reg_pair_steps): ED 0.010 to the exact law
        self.pairs = collect_ode_pairs(self.teacher, prompts(4096), root / "pairs", n_pairs=4096, steps=25,
                                       guidance=1.0, resolution=1, batch_size=1024)
        self.ckpts, self.scores = {}, {}

    def train(self, key: str, name: str, overrides: list[str] = ()):
        from addbench.train.entry import train

        if key not in self.ckpts:
            self.ckpts[key] = train(name, "gmm", self.root / key, list(overrides) + QUIET, device="cpu")
        return self.ckpts[key]

    def score(self, key: str, steps=None) -> dict:
        from addbench.gmm.sample import load_model

        if (key, steps) not in self.scores:
            s = self.scores[key, steps] = _metrics(*load_model(self.ckpts[key], device="cpu"), steps)
            print(f"[gmm seed {SEED}] {key} steps={steps or 'own'}: ED {s['energy_distance']:.4f} modes "
                  f"{s['modes_recovered']}/8 class_acc {s['class_accuracy']:.4f} weight_err {s['weight_error_max']:.4f}")
        return self.scores[key, steps]

    # the students ---------------------------------------------------------------------------------------
    def dmd(self, *extra):
        return self.train("dmd" + "".join(extra), "dmd", [f"ode_pairs={self.pairs}", *extra])

    def dmd2(self, *extra):
        return self.train("dmd2" + "".join(extra), "dmd2", [f"init={self.dmd()}", *extra])

    def adp(self):
        return self.train("adp", "dmdx.adp", [f"ode_pairs={self.pairs}"])

    def adm(self, *extra):
        return self.train("adm" + "".join(extra), "dmdx.adm", [f"init={self.adp()}", *extra])


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # module fixtures run before conftest's per-test one_thread
    try:
        yield World(tmp_path_factory.mktemp("gmm-exact"))
    finally:
        torch.set_num_threads(before)


@pytest.fixture(scope="module")
def teacher_1step(world) -> dict:
    s = _metrics(world.teacher, world.teacher.default_sampler, steps=1)
    assert s["energy_distance"] > 0.5  # the collapse onto the class means the bar is measured against
    return s


def _passes(s: dict, teacher: dict, bar: float = BAR, modes: int = 8) -> None:
    assert s["energy_distance"] <= bar * teacher["energy_distance"], (s, teacher["energy_distance"])
    assert s["modes_total"] == 8 and s["modes_recovered"] >= modes, s
    assert s["class_accuracy"] >= 0.9, s


# ---- the bar, per method ------------------------------------------------------------------------------------

def test_dmd_one_step(world, teacher_1step):
    world.dmd()
    _passes(world.score("dmd"), teacher_1step)


def test_dmd2_one_step_from_the_pre_regressed_generator(world, teacher_1step):
    world.dmd2()
    _passes(world.score("dmd2"), teacher_1step)


def test_dmd2_four_step_backward_simulation(world, teacher_1step):
    world.train("dmd2-4", "dmd2", ["gen_steps=4"])  # from the teacher (init=teacher), timesteps 999/749/499/249
    _passes(world.score("dmd2-4"), teacher_1step)


def test_adp_one_and_four_euler_steps(world, teacher_1step):
    world.adp()
    _passes(world.score("adp"), teacher_1step)
    _passes(world.score("adp", steps=4), teacher_1step)


def test_adm_one_step_from_adp(world, teacher_1step):
    world.adm()
    _passes(world.score("adm"), teacher_1step)


def test_adm_four_step_from_adp(world, teacher_1step):
    world.adm("gen_steps=4")
    _passes(world.score("admgen_steps=4"), teacher_1step)


def test_add_four_steps(world, teacher_1step):
    """ADD misses the common bar on this world. Since every draw is per sample (addbench/rng.py, 2026-12-03), its
    4-step ED over training seeds 0 / 1 / 2 is 0.181 / 0.156 / 0.121 with 7 / 7 / 8 modes (with the old per-rank
    stream it was 0.123 / 0.124 / 0.137: the margin was the stream's, not ADD's); the bar is ~0.151 and the teacher's
    own 4-step DDIM 0.108. Asserted here is what holds on all three seeds: ED <= 0.35 x the teacher's 1-step (0.21),
    >= 7 of 8 modes, class accuracy >= 0.9 (0.9475 / 0.9475 / 0.9637) -- far from a broken readout (1-step ~0.6+)."""
    world.train("add", "add")
    _passes(world.score("add", steps=4), teacher_1step, bar=0.35, modes=7)


# ---- the readout, and what training adds --------------------------------------------------------------------

def test_eps_readout_at_T_is_ill_conditioned(world):
    """Finding 1: the same DMD budget with the generator told t = 999 (ε read out with gain σ/α = 14.6) ends far
    from the exact law, where the preset's t = 399 (gain 1.16) reaches it."""
    world.dmd()
    world.dmd("gen_t=999")
    good = world.score("dmd")
    bad = world.score("dmdgen_t=999")
    # measured (training seeds 0 / 1): ED 0.063 / 0.056 vs 0.011 / 0.014 (4.1-6.0x), class accuracy 0.88 / 0.85 vs
    # 0.97 / 0.97 (0.09-0.12 lower): the t = 999 student misses the bar's class accuracy, the preset's passes it
    assert bad["energy_distance"] >= 2.5 * good["energy_distance"], (bad, good)
    assert bad["class_accuracy"] <= good["class_accuracy"] - 0.05, (bad, good)


def test_training_beats_the_untrained_readout(world):
    """At t = 399 the untrained teacher read out in one step already lands near the modes (ED ~0.21) on this world,
    so the bar alone cannot tell a trained student from its initialisation: the DMD student must beat it well."""
    import dataclasses

    world.dmd()
    init = _metrics(world.teacher, dataclasses.replace(world.teacher.default_sampler, steps=1, timesteps=(399.0,)))
    assert world.score("dmd")["energy_distance"] <= 0.3 * init["energy_distance"], init


def test_scatter_of_every_student_against_the_truth(world, tmp_path):
    """One scatter PNG: the exact law, the teacher at 1 step and every student trained above at its own sampler
    (``GMM_SCATTER=docs/gmm_students.png`` writes the committed figure). Runs last: it reuses the cached students."""
    from PIL import Image

    from addbench.bases.loading import apply_overrides
    from addbench.gmm.plot import scatter_png
    from addbench.gmm.sample import load_model, sample_points

    panels = {"teacher 1 step": (sample_points(world.teacher, CLASSES, SEEDS,
                                               apply_overrides(world.teacher.default_sampler, {"steps": 1})), CLASSES)}
    for key in ("dmd", "dmd2", "dmd2-4", "adp", "adm", "admgen_steps=4", "add"):
        if key in world.ckpts:
            base, sampler = load_model(world.ckpts[key], device="cpu")
            steps = 4 if key == "add" else None
            label = key.replace("gen_steps=4", " 4-step").replace("-4", " 4-step") + (" 4-step" if steps else "")
            panels[label] = (sample_points(base, CLASSES, SEEDS, apply_overrides(sampler, {"steps": steps} if steps
                                                                                 else None)), CLASSES)
    out = os.environ.get("GMM_SCATTER") or str(tmp_path / "students.png")
    img = Image.open(scatter_png(out, panels, world.teacher.mixture))
    assert len(panels) >= 5 and img.width >= (len(panels) + 1) * 300
