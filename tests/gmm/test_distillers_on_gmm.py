"""The distiller plug-ins run unchanged on the gmm base (their toy presets, a few steps, the gmm data)."""
import pytest

from addbench.gmm import GMM_BUDGET

FAST = [f"{k}={v}" for k, v in {**GMM_BUDGET, "batch": 16, "budget_images": 32, "warmup_images": 0}.items()]
FAST += ["tensorboard=false", "+progress=false"]


def _on_gmm(name: str):
    from addbench.registry import DISTILLERS

    cls = DISTILLERS.get(name)  # the toy preset under the name gmm (the gmm presets are the plug-ins' to add)
    return type(cls.__name__, (cls,), {"presets": {"gmm": cls.presets["toy"]}, "name": cls.name})


@pytest.mark.parametrize("name,extra", [("dmd2", ["head_width=0"]), ("dmd", ["lambda_reg=0"]),
                                        ("add", ["cond_img=false"]), ("dmdx.adm", ["latent_taps=base"])])
def test_distiller_trains_and_exports_on_gmm(name, extra, tmp_path):
    import numpy as np

    from addbench.gmm.metrics import score
    from addbench.gmm.sample import load_model, sample_points
    from addbench.train.entry import train

    ckpt = train(_on_gmm(name), "gmm", tmp_path / "run", FAST + extra, device="cpu")
    base, sampler = load_model(ckpt, device="cpu")
    cls = np.arange(40) % 4
    x = sample_points(base, cls, range(40), sampler)
    assert x.shape == (40, 2) and x.isfinite().all()
    assert 0 <= score(x, cls, base.mixture, n_ref=200)["class_accuracy"] <= 1


def test_dmdx_adp_on_teacher_ode_pairs(tmp_path):
    from addbench.bases.loading import load_base
    from addbench.gmm import prompts
    from addbench.train.entry import train
    from addbench.train.odepairs import collect_ode_pairs

    collect_ode_pairs(load_base("gmm", device="cpu"), prompts(32), tmp_path / "pairs", n_pairs=32, steps=10,
                      guidance=1.0, resolution=1, batch_size=32)
    train(_on_gmm("dmdx.adp"), "gmm", tmp_path / "run", FAST + ["latent_taps=base", f"ode_pairs={tmp_path / 'pairs'}"],
          device="cpu")


def test_add_with_image_conditioning_on_gmm(tmp_path):
    from addbench.train.entry import train

    train(_on_gmm("add"), "gmm", tmp_path / "run", FAST + ["cond_img=true"], device="cpu")
