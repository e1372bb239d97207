"""FID / KID against clean-fid itself, against scipy, reducibility, bootstrap, extractor loading."""
from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch
from PIL import Image
from scipy import linalg

from addbench.errors import AddbenchError
from addbench.metrics.fid import FID, KID, frechet_distance, kernel_distance


class RandomConvFeatures(torch.nn.Module):
    """clean-fid ``custom_feat_extractor``-style net with random weights: float [0,255] 299² -> 8-d."""

    id = "test-randconv-seed0"
    input_size = (299, 299)

    def __init__(self):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.w1 = torch.randn(12, 3, 5, 5, generator=g) * 0.1
        self.w2 = torch.randn(8, 12, generator=g) * 0.3

    @torch.no_grad()
    def forward(self, x):
        h = torch.nn.functional.conv2d(x / 255.0, self.w1, stride=4).tanh()
        return h.mean((2, 3)) @ self.w2.T + h.std((2, 3)) @ self.w2.T


def _images(n, seed, shift):
    g = torch.Generator().manual_seed(seed)
    base = torch.rand(n, 3, 1, 1, generator=g) * 150 + shift
    noise = torch.rand(n, 3, 24, 24, generator=g) * 100
    return (base + noise).clamp(0, 255).to(torch.uint8)


def _save(images, folder):
    folder.mkdir(parents=True, exist_ok=True)
    for i, im in enumerate(images):
        Image.fromarray(im.permute(1, 2, 0).numpy()).save(folder / f"{i:04d}.png")
    return folder


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("fid")
    gen, ref = _images(24, 1, 0), _images(30, 2, 40)
    return {"gen": gen, "ref": ref, "gen_dir": _save(gen, root / "gen"), "ref_dir": _save(ref, root / "ref"),
            "cache": root / "cache", "fx": RandomConvFeatures()}


def _keys(n, seeds=2):
    return [(i // seeds, i % seeds) for i in range(n)]


def _fid(data, **kw):
    return FID(reference=str(data["ref_dir"]), features=data["fx"], cache_dir=str(data["cache"]), **kw)


def test_fid_equals_cleanfid_compute_fid(data):
    from cleanfid import fid as cf

    metric = _fid(data)
    keys = _keys(len(data["gen"]))
    metric.update(data["gen"][:10], [""] * 10, keys[:10])
    metric.update(data["gen"][10:], [""] * 14, keys[10:])
    ours = metric.compute()
    ref = cf.compute_fid(str(data["gen_dir"]), str(data["ref_dir"]), mode="clean", custom_feat_extractor=data["fx"],
                         num_workers=0, batch_size=8, device=torch.device("cpu"), verbose=False)
    assert ours > 0.01
    assert ours == pytest.approx(ref, rel=1e-4)
    assert metric.id == "fid[test-randconv-seed0,clean]"
    assert metric.higher_is_better is False and metric.per_sample() is None


def test_legacy_resize_changes_value_and_id(data):
    clean, legacy = _fid(data), _fid(data, resize="legacy_pytorch")
    for m in (clean, legacy):
        m.update(data["gen"], [""] * 24, _keys(24))
    assert legacy.id.endswith(",legacy_pytorch]")
    assert abs(clean.compute() - legacy.compute()) > 1e-6


def test_frechet_distance_matches_scipy_sqrtm():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(200, 16)), rng.normal(size=(150, 16)) @ rng.normal(size=(16, 16)) * 0.5 + 0.3
    mu1, s1, mu2, s2 = a.mean(0), np.cov(a, rowvar=False), b.mean(0), np.cov(b, rowvar=False)
    covmean = linalg.sqrtm(s1 @ s2).real
    expected = float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(expected, rel=1e-6)
    assert frechet_distance(mu1, s1, mu1, s1) == pytest.approx(0.0, abs=1e-8)


def test_kid_equals_cleanfid_kernel_distance(data):
    from cleanfid import fid as cf

    ref_feats = cf.get_folder_features(str(data["ref_dir"]), data["fx"], num_workers=0, batch_size=8,
                                       device=torch.device("cpu"), mode="clean", verbose=False)
    gen_feats = cf.get_folder_features(str(data["gen_dir"]), data["fx"], num_workers=0, batch_size=8,
                                       device=torch.device("cpu"), mode="clean", verbose=False)
    # equal set sizes <= max_subset_size: every subset is a permutation of the whole set -> deterministic
    kid = KID(reference=str(data["ref_dir"]), features=data["fx"], cache_dir=str(data["cache"]), num_subsets=3)
    kid.update(data["gen"], [""] * 24, _keys(24))
    expected = cf.kernel_distance(gen_feats, ref_feats[:24], num_subsets=3)
    assert kernel_distance(gen_feats, ref_feats[:24], num_subsets=3) == pytest.approx(expected, rel=1e-4)  # clean-fid sums in float32
    # unequal sizes: subsets differ from clean-fid's global-RNG draws, but the estimate agrees on average
    ours = kid.compute()
    theirs = np.mean([cf.kernel_distance(gen_feats, ref_feats, num_subsets=50) for _ in range(4)])
    assert ours == pytest.approx(theirs, rel=0.1)
    assert kid.id.startswith("kid[test-randconv-seed0,clean,subsets=3x1000")


def test_states_sum_over_shards_like_one_allreduce(data):
    full, a, b = _fid(data), _fid(data), _fid(data)
    keys = _keys(24)
    full.update(data["gen"], [""] * 24, keys)
    a.update(data["gen"][:12], [""] * 12, keys[:12])
    b.update(data["gen"][12:], [""] * 12, keys[12:])
    for name, (_, reduce) in a._defaults.items():  # what Metric.sync does across ranks
        if reduce == "sum":
            setattr(a, name, getattr(a, name) + getattr(b, name))
        else:
            setattr(a, name, [torch.cat(getattr(a, name) + getattr(b, name))])
    assert a.compute() == pytest.approx(full.compute(), rel=1e-9)
    assert a.bootstrap(n_boot=20) == pytest.approx(full.bootstrap(n_boot=20), rel=1e-9)


def test_bootstrap_interval_contains_point_estimate(data):
    gen = torch.cat([data["gen"], _images(40, 7, 0)])
    metric = _fid(data)
    metric.update(gen, [""] * len(gen), _keys(len(gen), seeds=4))
    lo, hi = metric.bootstrap(n_boot=100)
    point = metric.compute()
    assert lo < hi and lo <= point <= hi


def test_precomputed_stats_npz_and_dimension_check(data, tmp_path):
    from cleanfid import fid as cf

    feats = cf.get_folder_features(str(data["ref_dir"]), data["fx"], num_workers=0, batch_size=8,
                                   device=torch.device("cpu"), mode="clean", verbose=False)
    np.savez(tmp_path / "ref.npz", mu=feats.mean(0), sigma=np.cov(feats, rowvar=False))
    metric = FID(reference=str(tmp_path / "ref.npz"), features=data["fx"])
    metric.update(data["gen"], [""] * 24, _keys(24))
    cached = _fid(data)
    cached.update(data["gen"], [""] * 24, _keys(24))
    assert metric.compute() == pytest.approx(cached.compute(), rel=1e-5)
    np.savez(tmp_path / "bad.npz", mu=np.zeros(3), sigma=np.eye(3))
    bad = FID(reference=str(tmp_path / "bad.npz"), features=data["fx"])
    bad.update(data["gen"], [""] * 24, _keys(24))
    with pytest.raises(AddbenchError, match="another extractor"):
        bad.compute()
    kid = KID(reference=str(tmp_path / "ref.npz"), features=data["fx"])
    kid.update(data["gen"], [""] * 24, _keys(24))
    with pytest.raises(AddbenchError, match="only mu/sigma"):
        kid.compute()


def test_missing_inception_weights_names_file(tmp_path, monkeypatch):
    monkeypatch.setenv("ADDBENCH_WEIGHTS", str(tmp_path))
    import addbench.metrics.features as features

    monkeypatch.setattr(features, "Path", _PathWithoutTmp)
    with pytest.raises(AddbenchError, match=r"inception-2015-12-05\.pt.*download https://"):
        FID(reference="unused", features="inception", weights=str(tmp_path / "nowhere"))


class _PathWithoutTmp(type(__import__("pathlib").Path())):
    """Path whose /tmp/inception-2015-12-05.pt never exists (the test machine may have clean-fid's cache)."""

    def is_file(self):
        return False if str(self).startswith("/tmp/inception") else super().is_file()


def test_inception_loads_through_cleanfid_wrapper(tmp_path, monkeypatch):
    class Layers(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 2048, 1)

        def forward(self, x):
            return self.conv(torch.nn.functional.adaptive_avg_pool2d(x, 4)).mean((2, 3))

    class FakeInception(torch.nn.Module):  # same interface as the real torchscript file
        def __init__(self):
            super().__init__()
            self.layers = Layers()

        def forward(self, x, return_features: bool = False):
            return self.layers(x)

    torch.manual_seed(0)
    fake = torch.jit.script(FakeInception())
    fake.save(str(tmp_path / "inception-2015-12-05.pt"))
    monkeypatch.setenv("ADDBENCH_WEIGHTS", str(tmp_path))
    metric = FID(reference="unused", features="inception")
    images = _images(3, 0, 0)
    metric.update(images, [""] * 3, _keys(3))
    from cleanfid.resize import build_resizer

    x = torch.stack([torch.from_numpy(build_resizer("clean")(im.permute(1, 2, 0).numpy()).transpose(2, 0, 1))
                     for im in images])
    expected = fake.layers((x - 128) / 128)
    assert torch.allclose(metric.features()[0], expected, atol=1e-5)
    assert metric.id == "fid[inception-2015-12-05,clean]"


def test_open_clip_features_from_local_dir(tmp_path):
    import open_clip
    from safetensors.torch import save_file

    cfg = {"model_cfg": {"embed_dim": 16, "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "head_width": 16,
                                                         "patch_size": 8},
                         "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 16, "heads": 2, "layers": 1}}}
    (tmp_path / "open_clip_config.json").write_text(json.dumps(cfg))
    torch.manual_seed(0)
    model = open_clip.create_model(f"local-dir:{tmp_path}").eval()
    save_file(model.state_dict(), str(tmp_path / "open_clip_model.safetensors"))
    metric = FID(reference="unused", features=f"open_clip:local-dir:{tmp_path}")
    images = _images(4, 0, 0)
    metric.update(images, [""] * 4, _keys(4))
    from cleanfid.resize import make_resizer

    rs = make_resizer("PIL", False, "bicubic", (32, 32))
    x = torch.stack([torch.from_numpy(rs(im.permute(1, 2, 0).numpy()).transpose(2, 0, 1)) for im in images]) / 255
    mean = torch.tensor(open_clip.OPENAI_DATASET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(open_clip.OPENAI_DATASET_STD).view(1, 3, 1, 1)
    with torch.no_grad():
        expected = model.encode_image((x - mean) / std)
    assert torch.allclose(metric.features()[0], expected, atol=1e-5)
    assert re.fullmatch(rf"fid\[open_clip:local-dir:{re.escape(tmp_path.name)}@[0-9a-f]{{8}},clean\]", metric.id), metric.id


DDP_SCRIPT = r'''
import json, sys
import torch, torch.distributed as dist, torch.multiprocessing as mp

def run(rank, out, ref, test_file, cache):
    import importlib.util
    from addbench.metrics.fid import FID, KID
    spec = importlib.util.spec_from_file_location("t", test_file)
    t = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(t)
    dist.init_process_group("gloo", init_method="file://" + out + ".rdv", rank=rank, world_size=2)
    imgs, keys = t.ddp_images(), t._keys(24)
    res = {}
    for split in (10, 24):  # 24: rank 1 scores nothing and still joins the all-reduce
        mine = list(range(split)) if rank == 0 else list(range(split, 24))
        for cls in (FID, KID):
            m = cls(reference=ref, features=t.SmallFeatures(), cache_dir=cache)
            if mine:
                m.update(imgs[mine], [""] * len(mine), [keys[i] for i in mine])
            m.sync()
            res[f"{cls.name}{split}"] = m.compute()
            if cls is FID:  # the runner splits the bootstrap draws over the ranks
                from addbench.eval.distributed import Dist
                from addbench.eval.runner import _split_bootstrap
                _split_bootstrap([m], 40, Dist(rank, 2, "cpu"))
                res[f"fidci{split}"] = m.bootstrap(40) if rank == 0 else None
    if rank == 0:
        json.dump(res, open(out, "w"))
    dist.destroy_process_group()

if __name__ == "__main__":
    mp.spawn(run, args=tuple(sys.argv[1:5]), nprocs=2)
'''


def ddp_images():
    return _images(24, 1, 0)


class SmallFeatures:
    """Cheap extractor for the multi-process test: channel mean / std / max at 16x16 (9-d)."""

    id, input_size = "test-small-9d", (16, 16)

    def __call__(self, x):
        return torch.cat([x.mean((2, 3)), x.std((2, 3)), x.amax((2, 3))], 1)


def test_sync_over_two_gloo_ranks_equals_one_process(data, tmp_path):
    """Metric.sync across 2 real torch.distributed ranks (gloo) == one process seeing everything."""
    import subprocess
    import sys

    script = tmp_path / "ddp.py"
    script.write_text(DDP_SCRIPT)
    out = tmp_path / "res.json"
    ref = data["ref_dir"]
    cache = tmp_path / "c"
    fid = FID(reference=str(ref), features=SmallFeatures(), cache_dir=str(cache))
    kid = KID(reference=str(ref), features=SmallFeatures(), cache_dir=str(cache))
    for m in (fid, kid):  # also makes the cached reference stats the ranks then load
        m.update(ddp_images(), [""] * 24, _keys(24))
        m.sync()
    proc = subprocess.run([sys.executable, str(script), str(out), str(ref), __file__, str(cache)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    two = json.loads(out.read_text())
    assert fid.compute() > 0
    for split in (10, 24):
        assert two[f"fid{split}"] == pytest.approx(fid.compute(), rel=1e-9)
        assert two[f"kid{split}"] == pytest.approx(kid.compute(), rel=1e-9)
        assert two[f"fidci{split}"] == pytest.approx(list(fid.bootstrap(40)), rel=1e-9)


def test_bootstrap_draw_rows_are_the_prompt_resampling_draws(data):
    """Vectorised draw rows == the per-prompt construction (drawn prompts in order, a prompt's rows ascending)."""
    m = _fid(data)
    rng = np.random.default_rng(0)
    keys = [(int(p), s) for p, s in zip(rng.integers(0, 7, 24), range(24))]  # uneven, unsorted prompts
    m.update(data["gen"], [""] * 24, keys)
    prompts = np.array([p for p, _ in keys])
    uniq = np.unique(prompts)
    rows = {p: np.flatnonzero(prompts == p) for p in uniq}
    draws = np.random.default_rng(5)
    expected = [np.concatenate([rows[p] for p in uniq[draws.integers(0, len(uniq), len(uniq))]]) for _ in range(6)]
    got = m._draw_rows(6, 5)
    assert len(got) == 6 and all(np.array_equal(a, b) for a, b in zip(got, expected))


class _Identity:
    id, input_size = "identity", (8, 8)

    def __call__(self, x):  # never called: states are set directly
        return x


def _loaded(cls, x, keys, ref_feats, **kw):
    from addbench.metrics.refstats import RefStats

    m = cls(features=_Identity(), **kw)
    x64 = torch.as_tensor(x, dtype=torch.float64)
    m._feats, m._feat_keys = [x64.float()], [torch.as_tensor(keys)]
    m._sum, m._outer, m._count = x64.sum(0), x64.T @ x64, torch.tensor(float(len(x)), dtype=torch.float64)
    m._ref = RefStats(ref_feats.mean(0), np.cov(ref_feats.T), ref_feats.astype(np.float32), "synthetic")
    return m


@pytest.mark.parametrize("n,d", [(60, 6), (30, 40)])  # 30 x 40: fewer distinct rows than dims (the Gram route)
def test_fid_draws_equal_fid_of_the_drawn_rows(n, d, monkeypatch):
    """Every route of ``bootstrap_values`` (batched, per draw) == FID of the drawn rows, gathered with repeats."""
    import addbench.metrics.fid as fid_mod

    rng = np.random.default_rng(0)
    keys = [(int(p), s) for s, p in enumerate(rng.integers(0, n // 3, n))]  # uneven prompts, unsorted
    m = _loaded(FID, rng.standard_normal((n, d)) * 2 + 1, keys, rng.standard_normal((500, d)))
    feats = m.features()[0].double()
    ref = m.reference_stats()
    expected = [frechet_distance(feats[r].mean(0), torch.cov(feats[r].T), ref.mu, ref.sigma)
                for r in m._draw_rows(9, 3)]
    batched = m.bootstrap_values(9, 3)
    monkeypatch.setattr(fid_mod, "_BATCH_ELEMS", 0)
    one_by_one = m.bootstrap_values(9, 3)
    split = {**m.bootstrap_values(9, 3, (0, 2)), **m.bootstrap_values(9, 3, (1, 2))}
    # rel 1e-6: with fewer samples than dims the d x d routes add sqrt(rounding noise) of the zero eigenvalues
    # (~1e-8 each), which the k x k Gram route does not have
    for values in (batched, one_by_one, split):
        assert [values[i] for i in range(9)] == pytest.approx(expected, rel=1e-9 if n > d else 1e-6)


def test_kid_draws_are_the_u_statistic_of_the_drawn_prompts():
    """KID draw = mean kernel over pairs of drawn samples that are distinct samples - 2 x mean kernel to the refs
    (KID less its reference-pair term, the same in every draw), from per-prompt kernel sums."""
    rng = np.random.default_rng(1)
    n, d = 30, 5
    keys = [(i // 3, i % 3) for i in range(n)]
    # float32-exact values: the metric keeps features and reference features in float32
    x, refs = (v.astype(np.float32).astype(np.float64)
               for v in (rng.standard_normal((n, d)), rng.standard_normal((80, d)) + 0.3))
    m = _loaded(KID, x, keys, refs)
    got = m.bootstrap_values(7, 4)
    k = lambda a, b: (a @ b.T / d + 1) ** 3
    for i, rows in enumerate(m._draw_rows(7, 4)):
        kk = k(x[rows], x[rows])
        distinct = rows[:, None] != rows[None, :]
        want = kk[distinct].mean() - 2 * k(x[rows], refs).mean()
        assert got[i] == pytest.approx(want, rel=1e-9)


def test_fid_kid_intervals_hold_their_estimate_and_say_how_they_were_made():
    """The old percentile interval sat above FID (bootstrap draws carry its O(1/n) bias again); the new one holds the
    estimate, for FID and KID, and ``ci_info`` names the rule and the number of draws."""
    rng = np.random.default_rng(2)
    d = 24
    x = rng.standard_normal((80, d)) * 1.05  # close to the reference: FID is mostly bias
    keys = [(i // 2, i % 2) for i in range(80)]
    refs = rng.standard_normal((2000, d))
    fid, kid = _loaded(FID, x, keys, refs), _loaded(KID, x, keys, refs)
    draws = fid.bootstrap_values(1000, 0)
    old_lo = np.quantile(list(draws.values()), 0.025)
    assert old_lo > fid.compute()  # the audit's finding: the percentile interval excludes its estimate
    for m in (fid, kid):
        lo, hi = m.bootstrap()
        assert lo <= m.compute() <= hi and lo < hi
        assert m.ci_info() == {"method": "basic+bias", "draws": 1000, "level": 0.95, "unit": "prompt"}
    assert fid.bootstrap()[0] >= 0
    assert FID(features=_Identity(), max_boot=200).ci_info()["draws"] == 200
