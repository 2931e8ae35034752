"""Conditional accuracy: how often a conditional generator draws the class it was asked for.

A small CNN (:class:`LabelClassifier`, one softmax head per label head: MNIST and CIFAR-10 one, the anime
faces two, hair and eye colour) is trained on the real data's labels, once per dataset and settings, and
cached on disk like FID's real statistics (``$GANS_CACHE/classifiers/<data key>-classifier-<settings>.pt``,
the data key being :meth:`datamodules.base.GANDataModule.cache_key`). Every ``every_kimg`` thousand images
and at the end (:class:`callbacks.schedule.KimgMetric`), ``num_samples`` generated images are drawn for
known labels, sample i with the i-th label of :meth:`gans.labels.LabelSpace.for_indices` (every class
equally often) and the latent seeded by i (:meth:`gans.training.gan_module.GANModule.sample_indexed`: the EMA generator
when there is one, a truncation trick when the model has one, eval mode), classified, and the share whose
predicted class equals the requested one is logged per head: ``metrics/cond_acc`` for one head,
``metrics/cond_acc_<head>`` for several (``metrics/cond_acc_hair``, ``metrics/cond_acc_eye``; head names
from the datamodule's ``label_heads``). Chance is 1 / classes; the ceiling is the classifier's own accuracy
on held-out real images, logged once per run as ``metrics/cond_acc_real`` (``metrics/cond_acc_real_<head>``)
so the generator's number can be read against it. The same protocol (a classifier trained on real data
scoring class-conditional samples) is the "classification accuracy score" family of evaluations of
conditional GANs (e.g. Odena et al. 2017, arXiv:1610.09585, section 4.1, with an Inception network; Ravuri
& Vinyals 2019); here a small CNN is used so it works on any labelled data, on CPU.

Under DDP each rank generates and classifies a contiguous block of the indices (as :class:`callbacks.FID`)
and torchmetrics' ``MulticlassAccuracy`` sums the counts over ranks through the Lightning strategy; the
classifier is trained (or loaded) on rank 0 and broadcast, so every rank scores with the same weights. The
evaluation never touches the global RNG: training continues identically with or without this callback.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.utilities import rank_zero_info
from torch import Tensor, nn
from torchmetrics.classification import MulticlassAccuracy

from callbacks.fid import rank_block
from callbacks.schedule import EvaluationBar, KimgMetric
from datamodules.images import ImageDataset
from gans.cache import cache_root, write_atomically
from gans.errors import ConfigError
from gans.labels import LabelSpace, head_names
from gans.training import contracts, distributed

CACHE_VERSION = 1  # bump when the classifier or its training changes, so old cached classifiers are not reused


def default_cache_dir() -> Path:
    """``$GANS_CACHE/classifiers``, by default ``~/.cache/gans/classifiers``."""
    return cache_root() / "classifiers"


class LabelClassifier(nn.Module):
    """A small CNN from images ``[N, C, R, R]`` in [-1, 1] to one logit vector per label head.

    Three stages of (3x3 conv, BN, LeakyReLU 0.2, 3x3 conv stride 2, BN, LeakyReLU 0.2), widths ``width``,
    ``2 width``, ``4 width``; the features are average-pooled to 4x4 (keeping coarse position: where the hair
    is) and each head is a linear layer on them. At ``width`` 32: 0.29M parameters plus the heads.
    """

    def __init__(self, channels: int, heads: tuple[int, ...], width: int = 32) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c_in = channels
        for stage in range(3):
            c = width * 2**stage
            for stride, source in ((1, c_in), (2, c)):
                layers += [nn.Conv2d(source, c, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(c), nn.LeakyReLU(0.2)]
            c_in = c
        self.features = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(4), nn.Flatten())
        self.heads = nn.ModuleList(nn.Linear(c_in * 16, k) for k in heads)

    def forward(self, images: Tensor) -> list[Tensor]:
        h = self.features(images)
        return [head(h) for head in self.heads]


def fetch(dataset: Any, indices: Tensor) -> tuple[Tensor, Tensor]:
    """Images and labels ``[N, heads]`` of ``indices``: one batch read for :class:`ImageDataset`, else item by item."""
    if isinstance(dataset, ImageDataset):
        images, labels = dataset[indices.tolist()]
    else:
        items = [dataset[int(i)] for i in indices]
        images = torch.stack([item[0] for item in items])
        labels = torch.stack([torch.as_tensor(item[1]) for item in items])
    return images, labels.long().reshape(len(indices), -1)


def quantize(images: Tensor) -> Tensor:
    """Generated images as a saved picture would hold them: clamped to [-1, 1] and rounded to 8 bits."""
    return images.float().clamp(-1, 1).add(1).mul(127.5).round().div(127.5).sub(1)


class ConditionalAccuracy(KimgMetric):
    """Every ``every_kimg`` thousand images: the share of ``num_samples`` generated images that a classifier
    trained on the real labels assigns to the requested class, per label head."""

    def __init__(
        self,
        every_kimg: float = 50.0,
        num_samples: int = 10_000,
        batch_size: int = 64,
        classifier_steps: int = 2000,
        classifier_batch_size: int = 128,
        classifier_lr: float = 1e-3,
        classifier_width: int = 32,
        holdout: float = 0.1,
        at_start: bool = False,
        at_end: bool = True,
        cache_dir: str | None = None,
        seed: int = 0,
    ) -> None:
        """
        Args:
            every_kimg: thousands of real images shown to D between evaluations; 0 = only at start/end.
            num_samples: generated images per evaluation (every label equally often when it is a multiple of the
                number of label combinations).
            batch_size: images per generator / classifier batch.
            classifier_steps: Adam steps of the classifier's training (once per dataset: it is cached).
            classifier_batch_size: real images per training step.
            classifier_lr: the classifier's Adam learning rate.
            classifier_width: channels of the classifier's first stage.
            holdout: share of the real images kept out of training, on which the classifier's own accuracy is measured.
            at_start: also evaluate before the first step.
            at_end: also evaluate when training ends.
            cache_dir: where trained classifiers are cached; None = ``$GANS_CACHE/classifiers`` (``~/.cache/gans/classifiers``).
            seed: seed of the classifier's initialisation, held-out split and batches.
        """
        super().__init__(every_kimg, at_start, at_end)
        if num_samples < 1 or batch_size < 1 or classifier_batch_size < 1 or classifier_width < 1 or classifier_steps < 0:
            raise ConfigError(
                "ConditionalAccuracy needs num_samples, batch_size, classifier_batch_size and classifier_width >= 1 "
                "and classifier_steps >= 0."
            )
        if not 0 < holdout < 1:
            raise ConfigError(f"ConditionalAccuracy holdout is the share of real images held out, in (0, 1); got {holdout}.")
        self.num_samples = num_samples
        self.batch_size = batch_size
        self.classifier_steps = classifier_steps
        self.classifier_batch_size = classifier_batch_size
        self.classifier_lr = classifier_lr
        self.classifier_width = classifier_width
        self.holdout = holdout
        self.cache_dir = Path(cache_dir).expanduser() if cache_dir else default_cache_dir()
        self.seed = seed
        self.classifier: LabelClassifier | None = None
        self.real_accuracy: list[float] | None = None  # per head, on the held-out real images
        self.trained = False  # whether this callback trained its classifier (False: loaded from the cache)
        self._real_logged = False

    # Lightning hooks.

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if stage != "fit":
            return
        contracts.require(pl_module, contracts.Sampler, "callbacks.ConditionalAccuracy", "remove callbacks.ConditionalAccuracy for this model")
        if not pl_module.label_space.conditional:
            raise ConfigError(
                f"callbacks.ConditionalAccuracy scores conditional generators, but {type(pl_module).__name__} is unconditional "
                f"(num_classes: 0): set model.init_args.num_classes (and a labelled datamodule), or remove the callback."
            )
        shape = contracts.data_shape(trainer.datamodule, pl_module)
        if shape is None or len(shape) != 3:
            raise ConfigError(f"ConditionalAccuracy classifies images, but the data have shape {shape}: remove callbacks.ConditionalAccuracy.")
        self._real_logged = False

    # The classifier.

    def settings(self, heads: tuple[int, ...], data_shape: tuple[int, ...]) -> dict[str, Any]:
        """Everything that decides the trained classifier besides the data (part of its cache file name)."""
        return dict(
            version=CACHE_VERSION, heads=list(heads), shape=list(data_shape), steps=self.classifier_steps,
            batch_size=self.classifier_batch_size, lr=self.classifier_lr, width=self.classifier_width,
            holdout=self.holdout, seed=self.seed,
        )

    def cache_path(self, datamodule: Any, heads: tuple[int, ...], data_shape: tuple[int, ...]) -> Path | None:
        if not isinstance(datamodule, contracts.CacheKeyed):
            return None  # no stable identity for the data: the classifier is kept for this run only
        digest = hashlib.sha1(json.dumps(self.settings(heads, data_shape), sort_keys=True).encode()).hexdigest()[:10]
        return self.cache_dir / f"{datamodule.cache_key()}-classifier-{digest}.pt"

    def split(self, size: int) -> tuple[Tensor, Tensor]:
        """Indices of the training and the held-out real images (a seeded permutation: classes may be sorted)."""
        order = torch.randperm(size, generator=torch.Generator().manual_seed(self.seed))
        held = max(1, round(size * self.holdout))
        if held >= size:
            raise ConfigError(f"ConditionalAccuracy: {size} real images are too few to hold out {self.holdout:.0%} and train on the rest.")
        return order[held:], order[:held]

    def train_classifier(
        self, dataset: Any, heads: tuple[int, ...], device: torch.device, progress: Callable[[int], Any] | None = None
    ) -> tuple[dict[str, Tensor], list[float]]:
        """Train a fresh classifier on the real images; its weights and its per-head accuracy on the held-out images.
        ``progress`` is called with 1 after each step (:class:`callbacks.schedule.EvaluationBar`'s ``update``)."""
        train_idx, held_idx = self.split(len(dataset))
        channels = fetch(dataset, train_idx[:1])[0].shape[1]
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []), torch.enable_grad():  # evaluate() runs under no_grad
            torch.manual_seed(self.seed)
            model = LabelClassifier(channels, heads, self.classifier_width).to(device)
            optimizer = torch.optim.Adam(model.parameters(), lr=self.classifier_lr)
            generator = torch.Generator().manual_seed(self.seed + 1)
            model.train()
            for _ in range(self.classifier_steps):
                pick = train_idx[torch.randint(len(train_idx), (self.classifier_batch_size,), generator=generator)]
                images, labels = fetch(dataset, pick)
                images, labels = images.to(device), labels.to(device)
                loss = sum(F.cross_entropy(logits, labels[:, h]) for h, logits in enumerate(model(images)))
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                if progress is not None:
                    progress(1)
        model.eval()
        correct = torch.zeros(len(heads))
        with torch.no_grad():
            for indices in held_idx.split(self.batch_size):
                images, labels = fetch(dataset, indices)
                for h, logits in enumerate(model(images.to(device))):
                    correct[h] += (logits.argmax(1).cpu() == labels[:, h]).sum()
        return {k: v.detach().cpu() for k, v in model.state_dict().items()}, (correct / len(held_idx)).tolist()

    def _prepare(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """The classifier on every rank: rank 0 loads it from the cache or trains it, then broadcasts it."""
        if self.classifier is not None:
            return
        heads = pl_module.label_space.heads
        dataset = contracts.real_dataset(trainer)
        channels, *size = dataset[0][0].shape
        path = self.cache_path(trainer.datamodule, heads, (channels, *size))
        payload = None
        if trainer.is_global_zero:
            if path is not None and path.is_file():
                payload = torch.load(path, map_location="cpu", weights_only=True)
                self.trained = False
                rank_zero_info(f"ConditionalAccuracy: classifier loaded from {path}.")
            else:
                start = time.perf_counter()
                rank_zero_info(f"ConditionalAccuracy: training the label classifier ({self.classifier_steps} steps; cached afterwards in {path or 'memory only'}).")
                with EvaluationBar(trainer, self.classifier_steps, "ConditionalAccuracy: training the classifier", unit="step",
                                   per_rank=False) as bar:
                    state, accuracy = self.train_classifier(dataset, heads, pl_module.device, progress=bar.update)
                payload = {"state_dict": state, "real_accuracy": torch.tensor(accuracy), "settings": json.dumps(self.settings(heads, (channels, *size)))}
                self.trained = True
                if path is not None:
                    write_atomically(path, lambda partial: torch.save(payload, partial))
                rank_zero_info(f"ConditionalAccuracy: classifier trained in {time.perf_counter() - start:.0f} s.")
        payload = trainer.strategy.broadcast(payload, src=0)
        self.classifier = LabelClassifier(channels, heads, self.classifier_width)
        self.classifier.load_state_dict(payload["state_dict"])
        self.classifier.to(pl_module.device).eval()
        self.real_accuracy = [float(a) for a in payload["real_accuracy"]]
        self._size = tuple(size)

    # The evaluation.

    def metric_names(self, trainer: L.Trainer, heads: tuple[int, ...], prefix: str = "metrics/cond_acc") -> list[str]:
        if len(heads) == 1:
            return [prefix]
        return [f"{prefix}_{name}" for name in head_names(trainer.datamodule, len(heads))]

    @torch.no_grad()
    def evaluate(self, trainer: L.Trainer, pl_module: L.LightningModule) -> dict[str, float]:
        """Score the current generator on every rank; log from rank 0."""
        start = time.perf_counter()
        device = pl_module.device
        label_space: LabelSpace = pl_module.label_space
        heads = label_space.heads
        sync = distributed.metric_sync(trainer.strategy)  # the counts are summed over ranks through the Lightning strategy
        with self.measuring(trainer, pl_module):
            self._prepare(trainer, pl_module)
            self.classifier.to(device)
            metrics = [MulticlassAccuracy(num_classes=k, average="micro", **sync).to(device) for k in heads]
            with EvaluationBar(trainer, self.num_samples, "ConditionalAccuracy: generated images") as bar:
                for indices in rank_block(self.num_samples, trainer.global_rank, trainer.world_size).split(self.batch_size):
                    images = quantize(pl_module.sample_indexed(indices)).to(device)
                    if tuple(images.shape[-2:]) != self._size:  # a lower growth stage: scored at the data's size
                        images = F.interpolate(images, size=self._size, mode="bilinear", antialias=True, align_corners=False)
                    labels = label_space.for_indices(indices).reshape(len(indices), -1).to(device)
                    for h, logits in enumerate(self.classifier(images)):
                        metrics[h].update(logits.argmax(1), labels[:, h])
                    bar.update(len(indices))
            values = {name: float(metric.compute()) for name, metric in zip(self.metric_names(trainer, heads), metrics)}

        ceiling = {}
        if not self._real_logged:  # the classifier's own accuracy on held-out real images: the ceiling, once per run
            ceiling = dict(zip(self.metric_names(trainer, heads, "metrics/cond_acc_real"), self.real_accuracy))
            self._real_logged = True
        text = ", ".join(f"{name.removeprefix('metrics/')} {value:.3f}" for name, value in values.items())
        real = ", ".join(f"{a:.3f}" for a in self.real_accuracy)
        chance = ", ".join(f"{1 / k:.3f}" for k in heads)
        return self.record(
            trainer, pl_module, values, f"Conditional accuracy {text}",
            f"classifier on real images {real}; chance {chance}; {self.num_samples} samples, {time.perf_counter() - start:.0f} s",
            also_logged=ceiling,
        )
