"""datamodules.CIFAR10DataModule on tiny files in the real format (torchvision's pickled batches): pixels, labels,
the MD5 check that guards the unpickling, offline and missing-data errors, and a short fit."""

from __future__ import annotations

import hashlib
import tarfile
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import quiet_trainer, write_cifar10

from datamodules import CIFAR10DataModule
from datamodules.cifar import CLASS_NAMES, GENUINE_CHECKSUMS
from gans import DCGAN
from gans.errors import DataNotFoundError

pytestmark = [
    pytest.mark.usefixtures("one_thread"),  # tiny networks: one thread (tests/conftest.py)
    pytest.mark.filterwarnings("ignore:.*does not have many workers.*", "ignore:.*LeafSpec.*"),
]


@pytest.fixture
def tiny(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, np.ndarray, np.ndarray]:
    """20 random training images in ``tmp_path/cifar`` whose sums the datamodule accepts; (root, images, labels)."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(20, 32, 32, 3), dtype=np.uint8)
    labels = rng.integers(0, 10, size=20)
    root = tmp_path / "cifar"
    monkeypatch.setattr(CIFAR10DataModule, "checksums", write_cifar10(root, per_batch=4, images=images, labels=labels))
    return root, images, labels


def loaded(root: Path, **kwargs) -> CIFAR10DataModule:
    dm = CIFAR10DataModule(root=str(root), download=False, num_workers=0, **kwargs)
    dm.prepare_data()
    dm.setup("fit")
    return dm


def test_pixels_and_labels_come_from_the_pickled_batches(tiny) -> None:
    root, images, labels = tiny
    dm = loaded(root, conditional=True, batch_size=5)
    assert dm.num_classes == 10 and dm.data_shape == (3, 32, 32) and dm.class_names == CLASS_NAMES
    assert len(dm.real_dataset()) == 20  # the five training batches, in order; not the test batch
    for i in (0, 7, 19):
        image, label = dm.real_dataset()[i]
        expected = torch.from_numpy(images[i]).permute(2, 0, 1).float() / 127.5 - 1  # HWC uint8 -> CHW [-1, 1]
        torch.testing.assert_close(image, expected, atol=1e-6, rtol=0)
        assert int(label) == labels[i]
    batch, batch_labels = next(iter(dm.train_dataloader()))
    assert batch.shape == (5, 3, 32, 32) and batch_labels.shape == (5,) and batch.min() >= -1 and batch.max() <= 1
    unlabelled = loaded(root)
    assert unlabelled.num_classes == 0 and int(unlabelled.real_dataset()[3][1]) == 0


def test_xflip_flips_training_images_only(tiny) -> None:
    root, images, _ = tiny
    dm = loaded(root, xflip=True, batch_size=20)
    torch.manual_seed(0)
    batch, _ = next(iter(dm.train_dataloader()))
    real = torch.stack([dm.real_dataset()[i][0] for i in range(20)])
    flipped = [any(torch.equal(b, r.flip(-1)) for r in real) and not any(torch.equal(b, r) for r in real) for b in batch]
    assert 0 < sum(flipped) < 20  # each image flipped with probability 1/2
    assert torch.equal(real[0], torch.from_numpy(images[0]).permute(2, 0, 1).float() / 127.5 - 1)  # metrics see unflipped images
    assert dm.cache_key() == loaded(root, conditional=True).cache_key()  # same images, same FID cache
    assert dm.cache_key() != CIFAR10DataModule(root=str(root.parent / "other")).cache_key()


def test_only_files_with_the_genuine_checksums_are_unpickled(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_cifar10(tmp_path / "cifar")  # right format, wrong (not genuine) sums, and the default table

    def no_unpickling(*args, **kwargs):
        raise AssertionError("a file whose MD5 does not match was unpickled")

    monkeypatch.setattr("torchvision.datasets.cifar.pickle.load", no_unpickling)
    assert CIFAR10DataModule.checksums == GENUINE_CHECKSUMS
    with pytest.raises(DataNotFoundError, match="MD5 sums of the genuine files") as info:
        CIFAR10DataModule(root=str(tmp_path / "cifar"), download=False).prepare_data()
    assert str((tmp_path / "cifar" / "cifar-10-batches-py").resolve()) in str(info.value)


def test_offline_download_names_the_folder_the_url_and_the_cause(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def offline(*args, **kwargs):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    root = tmp_path / "empty"
    with pytest.raises(DataNotFoundError) as info:
        CIFAR10DataModule(root=str(root), download=True).prepare_data()
    message = str(info.value)
    assert str((root / "cifar-10-batches-py").resolve()) in message
    assert "cifar-10-python.tar.gz" in message and "name resolution" in message
    with pytest.raises(DataNotFoundError, match="download is off"):
        CIFAR10DataModule(root=str(root), download=False).prepare_data()


def test_an_archive_put_there_by_hand_is_verified_and_extracted_offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    table = write_cifar10(tmp_path / "made", per_batch=2)
    root = tmp_path / "cifar"
    root.mkdir()
    archive = root / "cifar-10-python.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(tmp_path / "made" / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    monkeypatch.setattr(urllib.request, "urlopen", lambda *a, **k: pytest.fail("tried the network"))
    monkeypatch.setattr(CIFAR10DataModule, "checksums", {**table, archive.name: "0" * 32})  # archive not genuine: refused
    with pytest.raises(DataNotFoundError):
        CIFAR10DataModule(root=str(root), download=False).prepare_data()
    assert not (root / "cifar-10-batches-py").exists()
    monkeypatch.setattr(CIFAR10DataModule, "checksums", {**table, archive.name: hashlib.md5(archive.read_bytes()).hexdigest()})
    dm = loaded(root)
    assert len(dm.real_dataset()) == 10


def test_a_dcgan_fits_two_steps_on_cifar(tiny, tmp_path: Path) -> None:
    root, _, _ = tiny
    dm = CIFAR10DataModule(root=str(root), download=False, num_workers=0, batch_size=4, conditional=False)
    trainer = quiet_trainer(tmp_path, max_steps=2)
    trainer.fit(DCGAN(img_resolution=32, img_channels=3, z_dim=8, ngf=4, ndf=4), datamodule=dm)
    assert trainer.global_step == 2
