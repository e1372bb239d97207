"""Discriminators: frozen feature backbones (DINOv2, SAM, network taps) + light trainable heads."""
from addbench.discriminators.backbones import (Dinov2Backbone, NetworkTaps, SamBackbone, load_pretrained,
                                               tokens_to_map)
from addbench.discriminators.discriminator import MultiHeadDiscriminator
from addbench.discriminators.heads import DMD2Head, DMDXHead, TokenHead, VectorHead, Video3DHead, head_for

__all__ = ["Dinov2Backbone", "NetworkTaps", "SamBackbone", "load_pretrained", "tokens_to_map",
           "MultiHeadDiscriminator", "DMD2Head", "DMDXHead", "TokenHead", "VectorHead", "Video3DHead", "head_for"]
