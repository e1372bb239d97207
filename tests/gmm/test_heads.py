"""``head_for``: a VectorHead for (N, C) features; the same heads as before for 3/4/5-D features."""
import pytest
import torch

from addbench.discriminators.heads import DMD2Head, DMDXHead, TokenHead, VectorHead, Video3DHead, head_for


@pytest.mark.parametrize("shape,cls,out", [((4, 128), VectorHead, (4, 1)), ((4, 32, 49), TokenHead, (4, 1, 49)),
                                           ((4, 64, 8, 8), DMDXHead, (4, 1, 2, 2)),
                                           ((2, 32, 3, 8, 8), Video3DHead, (2, 1, 3, 1, 1))])
def test_head_for_dispatches_on_ndim(shape, cls, out):
    f = torch.randn(shape)
    head = head_for(f, width=64, n_blocks=2)
    assert isinstance(head, cls) and head(f).shape == out
    if f.ndim == 4:
        d2 = head_for(f, width=64, kind="dmd2")
        assert isinstance(d2, DMD2Head) and d2(f).shape == (4, 1, 1, 1)


def test_vector_head_projection_conditioning():
    torch.manual_seed(0)
    head = head_for(torch.randn(3, 16), width=32, n_blocks=2, cond_dim=5)
    torch.nn.init.zeros_(head.proj.embed.bias)
    f, c = torch.randn(3, 16), torch.randn(3, 5)
    assert head(f, c).shape == (3, 1) and torch.allclose(head(f, -c), -head(f, c), atol=1e-6)
    with pytest.raises(ValueError, match="cond"):
        head(f)


@pytest.mark.parametrize("shape,old,kw", [  # the constructor calls the distillers made before head_for
    ((2, 64, 8, 8), lambda: DMDXHead(64, width=None, n_blocks=4), {"width": 0, "n_blocks": 4}),
    ((2, 64, 8, 8), lambda: DMDXHead(64, width=32, n_blocks=2, cond_dim=8), {"width": 32, "n_blocks": 2, "cond_dim": 8}),
    ((2, 64, 8, 8), lambda: DMD2Head(64, 8, width=96), {"width": 96, "kind": "dmd2"}),
    ((2, 32, 49), lambda: TokenHead(32, width=64, cond_dim=8), {"width": 64, "cond_dim": 8}),
    ((2, 32, 3, 8, 8), lambda: Video3DHead(32, width=None), {"width": 0}),
])
def test_factory_builds_bit_identical_heads_to_the_old_constructors(shape, old, kw):
    f = torch.randn(shape)
    torch.manual_seed(3)
    a = old().state_dict()
    torch.manual_seed(3)
    b = head_for(f, **kw).state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
