"""Caption accuracy (toy world): the fraction of samples whose every captioned attribute is right.

The shipped attribute classifier (``assets/classifier``, one head per attribute, ~99.9% on held-out
real toy images) classifies each sample; the attributes the prompt names (``data.parse_caption``:
colour, shape, position, background and size when said) must all match. ``provenance()`` adds
per-attribute accuracies. Per-sample score is 0/1, so the base class bootstraps over prompts.
"""
from __future__ import annotations

from pathlib import Path

import torch

from addbench.metrics.base import Metric
from addbench.toy import data, nets


class CaptionAccuracy(Metric):
    name = "caption_accuracy"
    higher_is_better = True

    def __init__(self, device="cpu", classifier: str | None = None, batch: int = 512):
        super().__init__(device)
        self.classifier_path = classifier
        self.model = nets.load_classifier(classifier, self.device)
        self.batch = batch
        for k in data.SCHEMA:
            self.add_state(f"_right_{k}", torch.zeros((), dtype=torch.float64), "sum")
            self.add_state(f"_named_{k}", torch.zeros((), dtype=torch.float64), "sum")

    def convention(self) -> str:
        return "toy-classifier,all-captioned-attributes"

    def weight_files(self) -> list[tuple[str, Path]]:
        """(role, file) of the classifier weights, for the record's provenance (sha256)."""
        folder = Path(self.classifier_path) if self.classifier_path else nets.ASSETS / "classifier"
        return [("classifier", folder / "classifier.safetensors")]

    @torch.no_grad()
    def classify(self, images: torch.Tensor) -> list[dict[str, str]]:
        out = []
        for i in range(0, len(images), self.batch):
            logits = self.model(nets.to_unit(images[i:i + self.batch]).to(self.device))
            idx = {k: v.argmax(1).cpu().tolist() for k, v in logits.items()}
            out += [{k: self.model.schema[k][idx[k][j]] for k in idx} for j in range(len(next(iter(idx.values()))))]
        return out

    def update(self, images, prompts, keys) -> None:
        preds = self.classify(images)
        scores = []
        for pred, prompt in zip(preds, prompts):
            named = data.parse_caption(prompt)
            ok = True
            for k, v in named.items():
                right = pred.get(k) == v
                setattr(self, f"_right_{k}", getattr(self, f"_right_{k}") + float(right))
                setattr(self, f"_named_{k}", getattr(self, f"_named_{k}") + 1.0)
                ok &= right
            scores.append(float(ok and bool(named)))
        self._record(list(keys), scores)

    def per_attribute(self) -> dict[str, float]:
        return {k: float(getattr(self, f"_right_{k}") / getattr(self, f"_named_{k}"))
                for k in data.SCHEMA if float(getattr(self, f"_named_{k}")) > 0}

    def compute(self) -> float:
        return float(sum(self.scores) / len(self.scores)) if self.scores else float("nan")

    def provenance(self) -> dict:
        return {**super().provenance(), "classifier": self.classifier_path or "addbench/toy/assets/classifier",
                "per_attribute": self.per_attribute()}
