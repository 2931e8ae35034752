"""Neural style transfer (Gatys et al. 2016): the losses against hand computations, the VGG-19 feature extractor
(layer names, average pooling, normalisation, weight files) and the optimised image, on a random VGG-19 and
images of 16-32 px. The experiments' configs fit through the CLI in tests/test_experiments.py."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from helpers import quiet_trainer, write_folder
from PIL import Image
from torch import nn
from torchvision.models import VGG19_Weights
from torchvision.models.vgg import cfgs, make_layers

from gans.cli import cli
from gans.errors import ConfigError, DataNotFoundError, exit_on_user_error
from gans.metrics.vgg import VGG19_LAYERS, WEIGHTS_FILE, WEIGHTS_URL, VGGFeatures
from gans.tools.style_transfer import StyleTransfer, content_and_style, read_image
from gans.training.losses import content_loss, gram_matrix, style_layer_loss, style_loss

pytestmark = pytest.mark.usefixtures("one_thread")

SMALL = {"content_layers": ["relu2_1"], "style_layers": ["relu1_1", "relu2_1"]}  # the first 7 layers: fast steps


@pytest.fixture
def images(tmp_path: Path) -> tuple[Path, Path]:
    """A 24x32 (width x height) content image and a 20x20 style image, random pixels."""
    write_folder(tmp_path / "content", n=1, size=(24, 32), seed=1)
    write_folder(tmp_path / "style", n=1, size=(20, 20), seed=2)
    return tmp_path / "content" / "0.png", tmp_path / "style" / "0.png"


# Losses (section 2, eq. 1, 3, 4, 5).


def test_gram_matrix_matches_hand_computation() -> None:
    # Two filters over three positions (a 1x3 map): F = [[1, 2, 3], [0, -1, 2]].
    features = torch.tensor([[1.0, 2.0, 3.0], [0.0, -1.0, 2.0]]).view(1, 2, 1, 3)
    # G_ij = sum_k F_ik F_jk: G_00 = 1 + 4 + 9, G_01 = 0 - 2 + 6, G_11 = 0 + 1 + 4.
    assert torch.equal(gram_matrix(features), torch.tensor([[[14.0, 4.0], [4.0, 5.0]]]))
    batch = torch.randn(3, 4, 5, 6)
    flat = batch.reshape(3, 4, 30)
    expected = torch.stack([torch.stack([torch.stack([(flat[n, i] * flat[n, j]).sum() for j in range(4)]) for i in range(4)]) for n in range(3)])
    torch.testing.assert_close(gram_matrix(batch), expected)


def test_content_loss_matches_hand_computation() -> None:
    features = torch.tensor([1.0, 2.0, 3.0, 4.0]).view(1, 1, 2, 2)
    target = torch.tensor([0.0, 2.0, 5.0, 3.0]).view(1, 1, 2, 2)
    # 1/2 sum (F - P)^2 = 1/2 (1 + 0 + 4 + 1).
    assert content_loss(features, target).item() == 3.0


def test_style_losses_match_hand_computation() -> None:
    # N = 2 filters, M = 2 positions. F = [[1, 0], [1, 1]] -> G = [[1, 1], [1, 2]]; the target A = [[0, 1], [1, 1]].
    features = torch.tensor([[1.0, 0.0], [1.0, 1.0]]).view(1, 2, 1, 2)
    target = torch.tensor([[[0.0, 1.0], [1.0, 1.0]]])
    # E = sum (G - A)^2 / (4 N^2 M^2) = (1 + 0 + 0 + 1) / (4 * 4 * 4).
    assert style_layer_loss(features, target).item() == pytest.approx(2 / 64)
    # A second layer: one filter, four positions, F = [1, 1, 1, 1] -> G = [[4]], A = [[1]]: E = 9 / (4 * 1 * 16).
    features_2 = torch.ones(1, 1, 2, 2)
    target_2 = torch.tensor([[[1.0]]])
    assert style_layer_loss(features_2, target_2).item() == pytest.approx(9 / 64)
    # Eq. 5 with w = (0.25, 0.75).
    total = style_loss([features, features_2], [target, target_2], [0.25, 0.75])
    assert total.item() == pytest.approx(0.25 * 2 / 64 + 0.75 * 9 / 64)


# VGG-19 features (section 2).


def test_layer_names_are_torchvisions_indices() -> None:
    torchvision_features = make_layers(cfgs["E"])  # what torchvision.models.vgg19() uses as .features
    convs = [i for i, m in enumerate(torchvision_features) if isinstance(m, nn.Conv2d)]
    assert len(convs) == 16 and len(VGG19_LAYERS) == 16 * 2 + 5
    widths = (64, 128, 256, 512, 512)
    for name, index in VGG19_LAYERS.items():
        module = torchvision_features[index]
        block = int(name[4])  # conv1_1, relu1_1, pool1: the block number follows the 4-letter kind
        if name.startswith("conv"):
            assert isinstance(module, nn.Conv2d) and module.out_channels == widths[block - 1], name
        elif name.startswith("relu"):
            assert isinstance(module, nn.ReLU) and isinstance(torchvision_features[index - 1], nn.Conv2d), name
        else:
            assert isinstance(module, nn.MaxPool2d), name
    # The indices every PyTorch port of the paper uses (e.g. the PyTorch neural style tutorial's conv_4 ... ).
    assert [VGG19_LAYERS[n] for n in ("conv1_1", "relu1_1", "pool1", "conv2_1", "conv3_1", "conv4_1", "conv4_2", "relu4_2", "conv5_1", "pool5")] == [
        0, 1, 4, 5, 10, 19, 21, 22, 28, 36]


def test_features_are_the_named_layers_and_stop_after_the_deepest() -> None:
    vgg = VGGFeatures(["conv1_1", "relu1_1", "relu2_1"], weights="random")
    assert len(vgg.features) == VGG19_LAYERS["relu2_1"] + 1  # nothing built or run past relu2_1
    images = torch.rand(2, 3, 16, 16) * 2 - 1
    out = vgg(images)
    assert list(out) == ["conv1_1", "relu1_1", "relu2_1"]
    conv = vgg.features[0]
    expected_conv = F.conv2d(vgg.normalize(images), conv.weight, conv.bias, padding=1)
    torch.testing.assert_close(out["conv1_1"], expected_conv)  # not rectified in place by the following ReLU
    torch.testing.assert_close(out["relu1_1"], expected_conv.relu())
    assert out["relu2_1"].shape == (2, 128, 8, 8)


def test_max_pooling_is_replaced_by_average_pooling() -> None:
    vgg = VGGFeatures(["relu1_2", "pool1"], weights="random")
    assert not any(isinstance(m, nn.MaxPool2d) for m in vgg.features)
    assert isinstance(vgg.features[VGG19_LAYERS["pool1"]], nn.AvgPool2d)
    out = vgg(torch.rand(1, 3, 16, 16) * 2 - 1)
    torch.testing.assert_close(out["pool1"], F.avg_pool2d(out["relu1_2"], 2))
    assert not torch.allclose(out["pool1"], F.max_pool2d(out["relu1_2"], 2))
    with_max = VGGFeatures(["pool1"], weights="random", pooling="max")
    assert isinstance(with_max.features[VGG19_LAYERS["pool1"]], nn.MaxPool2d)


def test_input_is_normalised_as_torchvisions_weights_expect() -> None:
    preset = VGG19_Weights.IMAGENET1K_V1.transforms()  # ImageClassification: [0, 1] images normalised with mean, std
    vgg = VGGFeatures(["relu1_1"], weights="random")
    images = torch.rand(2, 3, 8, 8) * 2 - 1
    expected = (images.add(1).div(2) - torch.tensor(preset.mean).view(1, 3, 1, 1)) / torch.tensor(preset.std).view(1, 3, 1, 1)
    torch.testing.assert_close(vgg.normalize(images), expected)


def test_normalised_network_has_mean_activation_one_per_filter() -> None:
    vgg = VGGFeatures(["relu1_1", "relu1_2", "conv2_1", "relu2_1"], weights="random")
    images = torch.rand(2, 3, 16, 16) * 2 - 1
    before = vgg(images)
    means = vgg.normalize_filters(images)  # conv1_1, conv1_2, conv2_1: 64 + 64 + 128
    after = vgg(images)
    for name in ("relu1_1", "relu1_2", "relu2_1"):
        mean = after[name].mean(dim=(0, 2, 3))
        active = before[name].mean(dim=(0, 2, 3)) > 0
        assert active.sum() > 0.9 * len(active)
        torch.testing.assert_close(mean[active], torch.ones(int(active.sum())))
    # Only rescaled ("without changing its output"): the pre-ReLU conv2_1 maps are the old ones divided by their means.
    assert means.shape == (256,) and (means > 0).all()
    torch.testing.assert_close(after["conv2_1"] * means[128:].view(1, -1, 1, 1), before["conv2_1"], rtol=1e-4, atol=1e-5)


def test_random_weights_are_seeded_and_vgg19_has_torchvisions_parameter_count() -> None:
    full = VGGFeatures(["pool5"], weights="random", seed=3)
    assert sum(p.numel() for p in full.parameters()) == 20_024_384
    # + the classifier (25088 -> 4096 -> 4096 -> 1000) = torchvision's count for the weights file.
    classifier = 25088 * 4096 + 4096 + 4096 * 4096 + 4096 + 4096 * 1000 + 1000
    assert 20_024_384 + classifier == VGG19_Weights.IMAGENET1K_V1.meta["num_params"] == 143_667_240
    again, other = VGGFeatures(["relu1_1"], weights="random", seed=3), VGGFeatures(["relu1_1"], weights="random", seed=4)
    assert torch.equal(again.features[0].weight, full.features[0].weight)
    assert not torch.equal(other.features[0].weight, full.features[0].weight)
    assert not any(p.requires_grad for p in full.parameters())


# Weight files.


def write_vgg19_file(path: Path, depth_name: str = "relu2_1") -> dict[str, torch.Tensor]:
    """Random tensors in torchvision's state-dict format for the convolutions up to ``depth_name`` (plus a
    classifier key, which the loader ignores)."""
    state = {}
    for i, module in enumerate(make_layers(cfgs["E"])[: VGG19_LAYERS[depth_name] + 1]):
        if isinstance(module, nn.Conv2d):
            state[f"features.{i}.weight"] = torch.randn_like(module.weight)
            state[f"features.{i}.bias"] = torch.randn_like(module.bias)
    state["classifier.6.bias"] = torch.zeros(1000)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, path)
    return state


def test_weight_file_loads_from_a_path_and_from_torchs_hub_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    state = write_vgg19_file(tmp_path / "mine.pth")
    vgg = VGGFeatures(["relu2_1"], weights=str(tmp_path / "mine.pth"))
    for i in (0, 2, 5):
        assert torch.equal(vgg.features[i].weight, state[f"features.{i}.weight"])
        assert torch.equal(vgg.features[i].bias, state[f"features.{i}.bias"])
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    cached = write_vgg19_file(tmp_path / "hub" / "checkpoints" / WEIGHTS_FILE)
    vgg = VGGFeatures(["relu2_1"], weights="imagenet")
    assert torch.equal(vgg.features[5].weight, cached["features.5.weight"])
    with pytest.raises(ConfigError, match=r"lacks features\.7\.weight"):  # conv2_2 is not in the file
        VGGFeatures(["relu2_2"], weights=str(tmp_path / "mine.pth"))


def test_missing_weights_fail_with_one_line_naming_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys, images) -> None:
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    with pytest.raises(DataNotFoundError) as err:
        VGGFeatures(["relu1_1"], weights="imagenet")
    message = str(err.value)
    assert "\n" not in message and WEIGHTS_URL in message and str(tmp_path / "hub" / "checkpoints" / WEIGHTS_FILE) in message
    # Through the command line: one "error:" line, exit status 2.
    content, style = images
    args = ["fit", "--model=gans.StyleTransfer", f"--model.init_args.content={content}", f"--model.init_args.style={style}", "--trainer.max_steps=1"]
    with pytest.raises(SystemExit) as exit_:
        exit_on_user_error(lambda: cli(args))
    assert exit_.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines[-1].startswith("error: VGG-19 weights not found") and WEIGHTS_FILE in lines[-1]


# Images.


def test_images_from_files_and_zips_sized_as_the_paper(tmp_path: Path, images) -> None:
    content, style = images
    with zipfile.ZipFile(tmp_path / "styles.zip", "w") as archive:
        archive.write(style, "art/0.png")
    assert torch.equal(torch.tensor(list(read_image(tmp_path / "styles.zip" / "art" / "0.png").getdata())),
                       torch.tensor(list(Image.open(style).convert("RGB").getdata())))
    with pytest.raises(DataNotFoundError, match="art/1.png is not an image"):
        read_image(tmp_path / "styles.zip" / "art" / "1.png")
    with pytest.raises(DataNotFoundError, match="not found"):
        read_image(tmp_path / "nothing.png")
    # The content's longer side becomes image_size (aspect kept); the style takes the content's size (section 2.3).
    content_pixels, style_pixels = content_and_style(content, tmp_path / "styles.zip" / "art" / "0.png", image_size=16)
    assert content_pixels.shape == style_pixels.shape == (1, 3, 16, 12)
    assert content_pixels.min() >= -1 and content_pixels.max() <= 1


def test_image_starts_from_white_noise_or_the_content(images) -> None:
    content, style = images
    noise = StyleTransfer(str(content), str(style), image_size=16, weights="random", seed=5, **SMALL)
    again = StyleTransfer(str(content), str(style), image_size=16, weights="random", seed=5, **SMALL)
    assert torch.equal(noise.image, again.image) and noise.image.min() >= -1 and noise.image.max() <= 1
    assert noise.image.std() > 0.5  # uniform on [-1, 1]: std 0.577
    with pytest.raises(ConfigError, match=r"the content image is 12x16 px, but the VGG-19 layers up to relu5_1 need 16 px on each side: set image_size to 22"):
        StyleTransfer(str(content), str(style), image_size=16, weights="random")  # the paper's layers pool 4 times
    from_content = StyleTransfer(str(content), str(style), image_size=16, weights="random", init="content", **SMALL)
    assert torch.equal(from_content.image.detach(), from_content.content_pixels)
    assert [name for name, _ in noise.named_parameters() if _.requires_grad] == ["image"]


# Optimisation (section 2.3).


@pytest.mark.parametrize(("optimizer", "init"), [("lbfgs", "noise"), ("lbfgs", "content"), ("adam", "noise")])
def test_the_image_moves_toward_lower_loss(optimizer: str, init: str, images, tmp_path: Path) -> None:
    content, style = images
    model = StyleTransfer(str(content), str(style), image_size=16, weights="random", optimizer=optimizer, init=init, lbfgs_max_iter=5,
                          picture_every_n_steps=2, **SMALL)
    vgg_before = {k: v.clone() for k, v in model.vgg.state_dict().items()}
    start = model.image.detach().clone()
    with torch.no_grad():
        before = model.total_loss(*model.losses(model.image)).item()
    trainer = quiet_trainer(tmp_path / "run", max_steps=3)
    trainer.fit(model)
    with torch.no_grad():
        content_after, style_after = model.losses(model.image)
    after = model.total_loss(content_after, style_after).item()
    # From noise the loss falls steeply; from the content image only the style term is left to lower.
    assert after < {("lbfgs", "noise"): 0.5, ("lbfgs", "content"): 0.99, ("adam", "noise"): 0.95}[optimizer, init] * before, (before, after)
    assert not torch.equal(model.image.detach(), start)
    assert all(torch.equal(v, vgg_before[k]) for k, v in model.vgg.state_dict().items())  # the image is the only parameter
    assert trainer.callback_metrics["train/loss"].item() == pytest.approx(
        model.hparams.content_weight * trainer.callback_metrics["train/content_loss"].item()
        + model.hparams.style_weight * trainer.callback_metrics["train/style_loss"].item(), rel=1e-5)
    samples = tmp_path / "run" / "samples"
    assert {p.name for p in samples.iterdir()} == {"step_0000002.png", "step_0000003.png", "latest.png", "result.png"}
    assert Image.open(samples / "result.png").size == (12, 16)
