"""Every experiments/*.yaml parses and fits for a few steps on tiny data, through the real CLI."""

from pathlib import Path

import pytest
import yaml
from helpers import write_cifar10, write_folder, zip_folder

from gans.cli import cli

EXPERIMENTS = sorted((Path(__file__).parents[1] / "experiments").glob("*.yaml"))


IMAGE_DATA = {"datamodules.ImageFolderDataModule", "datamodules.FFHQDataModule", "datamodules.AnimeFacesDataModule"}


# Configs whose networks are too big for a CPU step at their size (1024 px, or 20M+ parameters) run with narrow
# networks at a small resolution, on one process: every other setting of the file is kept.
SHRINK = {
    "stylegan2_ffhq": {"img_resolution": 32, "args": ["--model.init_args.channel_base=256", "--model.init_args.channel_max=16",
                                                      "--trainer.devices=1", "--trainer.strategy=auto"]},
    "stylegan2_anime": {"img_resolution": 32, "args": ["--model.init_args.channel_base=256", "--model.init_args.channel_max=16"]},
    # StyleGAN3 T / R (22M / 15M parameters at 1024 px, 64 px anime 20M+) at 32 px with narrow G and D; the CPU config
    # narrower still (every StyleGAN3 layer works at 52 px with a 2x oversampled activation even for 32 px images). R1 in
    # every D step (r1_interval 1), so the test's 4 optimizer steps are 2 whole batches (Dmain + Gmain each; no path length).
    **{name: {"img_resolution": 32, "args": ["--model.init_args.channel_base=64", "--model.init_args.channel_max=8",
                                             "--model.init_args.d_channel_base=256", "--model.init_args.d_channel_max=16",
                                             "--model.init_args.r1_interval=1",
                                             *(["--trainer.devices=1", "--trainer.strategy=auto"] if name.endswith("ffhq") else [])]}
       for name in ("stylegan3_t_ffhq", "stylegan3_r_ffhq", "stylegan3_anime", "stylegan3_faces_cpu")},
    # The growing 1024 px configs at 32 px with narrow stages (their per-resolution batch sizes and lr above 32 px are
    # dropped by with_tiny_fid): at 1024 px the tiny folder, its cache and the pictures cost most of a minute.
    "stylegan_ffhq": {"img_resolution": 32, "args": ["--model.init_args.fmap_base=128", "--model.init_args.fmap_max=16",
                                                     "--trainer.devices=1", "--trainer.strategy=auto"]},
    "progan": {"img_resolution": 32, "args": ["--model.init_args.fmap_base=128", "--model.init_args.fmap_max=16"]},
    # MSG-GAN's 1024 px networks (23M / 19M parameters, every scale in every step) at 32 px with narrow blocks.
    "msggan_ffhq": {"img_resolution": 32, "args": ["--model.init_args.fmap_base=128", "--model.init_args.fmap_max=16"]},
    # ProGAN at 64 px has 512-wide stages (22M parameters, most of a checkpoint's 5 s): narrow ones.
    "progan_anime": {"args": ["--model.init_args.fmap_base=128", "--model.init_args.fmap_max=16"]},
    # Jin et al.'s SRResNet G and D (3.5M / 4.8M parameters, 16 residual blocks at 64 px) with narrow widths and few blocks.
    "acgan_anime": {"args": ["--model.init_args.ngf=8", "--model.init_args.ndf=4", "--model.init_args.g_blocks=2", "--model.init_args.d_blocks=1"]},
    # BigGAN's 64 px anime networks (51M parameters) and the CIFAR ones (8.5M, 256 channels at 32x32) at ch 2 / ch 4.
    "biggan_anime": {"args": ["--model.init_args.g_ch=2", "--model.init_args.d_ch=2", "--model.init_args.standing_stats_batch_size=4"]},
    # n_critic 3 instead of 4, so the test's 4 optimizer steps end with a G step (D, D, D + G).
    "biggan_cifar10": {"args": ["--model.init_args.g_ch=4", "--model.init_args.d_ch=4", "--model.init_args.n_critic=3"]},
    # SAGAN's 64 px anime networks (32M / 38M parameters) at ch 2, still 64 px with the attention at 32x32.
    "sagan_anime": {"args": ["--model.init_args.g_ch=2", "--model.init_args.d_ch=2"]},
    # CoGAN's Table 1 generator pair (7.8M parameters, 1024 ... 128 shared channels) with narrow shared layers.
    **{name: {"args": ["--model.init_args.g_channels=[32, 16, 8, 8]"]} for name in ("cogan_mnist_edges", "cogan_mnist_negative")},
    # StarGAN: the official networks (8.5M / 11M parameters at 64 px) narrow in the full config; n_critic 3 instead of 5 in
    # both, so the test's 4 optimizer steps end with a G step (D, D, D + G).
    "stargan_anime": {"args": ["--model.init_args.ngf=4", "--model.init_args.ndf=4", "--model.init_args.g_blocks=1", "--model.init_args.n_critic=3"]},
    "stargan_anime_cpu": {"args": ["--model.init_args.n_critic=3"]},
    # SNGAN / projection cGAN: the CIFAR ResNets (4.3M, 256 channels at 32x32) at ch 8 and the 64 px ones (22M) at ch 2;
    # n_critic 3 instead of 5 in all six configs, so the test's 4 optimizer steps end with a G step (D, D, D + G).
    **{name: {"args": [*(["--model.init_args.g_ch=8", "--model.init_args.d_ch=8"] if "cifar10" in name else []),
                       *(["--model.init_args.g_ch=2", "--model.init_args.d_ch=2"] if name.endswith("_anime") else []),
                       "--model.init_args.n_critic=3"]}
       for name in ("sngan_cifar10", "projection_cifar10", "sngan_anime", "projection_anime", "sngan_anime_cpu", "projection_anime_cpu")},
}


def shrink(config: Path) -> list[str]:
    small = SHRINK.get(config.stem)
    if small is None:
        return []
    side = small.get("img_resolution")
    sizes = [] if side is None else [f"--model.init_args.img_resolution={side}", f"--data.init_args.img_resolution={side}"]
    return [*sizes, *small["args"]]


def tiny_tags(init_args: dict, n: int, path: Path) -> list[str]:
    """A tags file giving each of ``n`` tiny images a hair and an eye colour, for a conditional anime config. The colours
    come from the config's ``hair_colors`` / ``eye_colors`` when it names them (so its ``num_classes`` still fit);
    otherwise the data has 3 x 2 classes and the model is told so."""
    hair = (init_args.get("hair_colors") or ["blonde", "blue", "pink"])[:3]
    eyes = (init_args.get("eye_colors") or ["red", "green"])[:2]
    path.write_text("".join(f"{i},{hair[i % len(hair)]} hair {eyes[(i // len(hair)) % len(eyes)]} eyes\n" for i in range(n)))
    args = [f"--data.init_args.tags_file={path}"]
    if not init_args.get("hair_colors") or not init_args.get("eye_colors"):
        args.append(f"--model.init_args.num_classes=[{len(hair) if not init_args.get('hair_colors') else len(init_args['hair_colors'])}, "
                    f"{len(eyes) if not init_args.get('eye_colors') else len(init_args['eye_colors'])}]")
    return args


def overrides(config: Path, mnist_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch | None = None) -> list[str]:
    data = yaml.safe_load(config.read_text())["data"]
    data_class = data["class_path"]
    if "img_resolution" in SHRINK.get(config.stem, {}):
        data["init_args"]["img_resolution"] = SHRINK[config.stem]["img_resolution"]
    if data_class in ("datamodules.MNISTDataModule", "datamodules.MNISTDomainsDataModule"):  # the domains: halves of the tiny split
        return [f"--data.init_args.root={mnist_root}", "--data.init_args.download=false", "--data.init_args.batch_size=8", "--data.init_args.num_workers=0",
                *shrink(config)]
    if data_class == "datamodules.CIFAR10DataModule":  # 40 tiny images in the real pickled format, their MD5 sums accepted
        from datamodules import CIFAR10DataModule

        assert monkeypatch is not None, f"{config.name}: CIFAR-10 overrides need the monkeypatch fixture"
        monkeypatch.setattr(CIFAR10DataModule, "checksums", write_cifar10(tmp_path / "cifar10", per_batch=8))
        return [f"--data.init_args.root={tmp_path / 'cifar10'}", "--data.init_args.download=false", "--data.init_args.batch_size=8",
                "--data.init_args.num_workers=0", *shrink(config)]  # SHRINK entries of CIFAR configs: "args" only (no img_resolution)
    if data_class == "datamodules.ToyDataModule":
        return ["--data.init_args.num_samples=256", "--data.init_args.batch_size=32"]
    if data_class in IMAGE_DATA:  # a tiny folder (or zip, like the config's) of images at the config's resolution
        side = data["init_args"]["img_resolution"]
        n = 64 if side <= 64 else 16
        root = write_folder(tmp_path / "images", n=n, size=(side, side), sub="images")
        if str(data["init_args"]["root"]).endswith(".zip"):
            root = zip_folder(root, tmp_path / "images.zip")
        tags = tiny_tags(data["init_args"], n, tmp_path / "tags.csv") if data["init_args"].get("tags_file") else []
        return [f"--data.init_args.root={root}", "--data.init_args.batch_size=8", "--data.init_args.num_workers=0", f"--data.init_args.cache_dir={tmp_path / 'cache'}",
                *tags, *shrink(config)]
    if data_class in ("datamodules.PairedImageDataModule", "datamodules.UnpairedImageDataModule"):
        return translation_data(config, data, tmp_path)
    raise AssertionError(f"{config.name}: add tiny-data overrides for {data_class}")


def translation_data(config: Path, data: dict, tmp_path: Path) -> list[str]:
    """Tiny paired (A|B side by side, train and val) or unpaired (trainA/trainB/testA/testB, or the two domain
    datamodules' folders) images at 32 px, and the image-to-image networks at ngf = ndf = 8 (1 residual block)."""
    model = yaml.safe_load(config.read_text())["model"]["class_path"]
    narrow = ["--model.init_args.img_resolution=32", "--model.init_args.ngf=8", "--model.init_args.ndf=8"]
    if model == "gans.CycleGAN":
        narrow.append("--model.init_args.g_blocks=1")
    loader = ["--data.init_args.batch_size=2", "--data.init_args.num_workers=0"]
    if data["class_path"] == "datamodules.PairedImageDataModule":
        for split in ("train", "val"):
            write_folder(tmp_path / "pairs", n=4, size=(64, 32), sub=split, seed=len(split))
        return [f"--data.init_args.root={tmp_path / 'pairs'}", "--data.init_args.load_size=36", "--data.init_args.crop_size=32", *loader, *narrow]
    if data["init_args"].get("root"):
        for seed, split in enumerate(("trainA", "trainB", "testA", "testB")):
            write_folder(tmp_path / "unpaired", n=4, size=(32, 32), sub=split, seed=seed)
        return [f"--data.init_args.root={tmp_path / 'unpaired'}", "--data.init_args.load_size=36", "--data.init_args.crop_size=32", *loader, *narrow]
    domains = []
    for seed, domain in enumerate(("domain_a", "domain_b")):
        write_folder(tmp_path / domain, n=8, size=(32, 32), sub="images", seed=seed)
        domains += [f"--data.init_args.{domain}.init_args.root={tmp_path / domain}", f"--data.init_args.{domain}.init_args.img_resolution=32",
                    f"--data.init_args.{domain}.init_args.cache_dir={tmp_path / 'cache'}"]
    return [*domains, *loader, *narrow]


def test_every_experiment_is_tested() -> None:
    names = {p.stem for p in EXPERIMENTS}
    assert {"quickstart", "gan_mnist", "cgan_mnist", "dcgan_mnist", "lsgan_mnist", "wgan_mnist", "wgan_gp_mnist", "progan", "progan_anime", "progan_faces_cpu", "msggan_ffhq", "msggan_faces_cpu",
            "stylegan2_ffhq", "stylegan2_anime", "stylegan2_anime2k_cpu", "stylegan2_faces_cpu", "stylegan_ffhq", "stylegan_faces_cpu",
            "stylegan3_t_ffhq", "stylegan3_r_ffhq", "stylegan3_anime", "stylegan3_faces_cpu",
            "acgan_mnist", "acgan_anime", "acgan_anime_cpu", "biggan_cifar10", "biggan_anime", "biggan_anime_cpu",
            "sagan_anime", "sagan_anime_cpu", "sngan_cifar10", "projection_cifar10", "sngan_anime", "projection_anime",
            "sngan_anime_cpu", "projection_anime_cpu", "style_transfer", "style_transfer_cpu", "stargan_anime", "stargan_anime_cpu",
            "pix2pix_facades", "pix2pix_edges2shoes", "pix2pix_maps", "pix2pix_edges_cpu", "cyclegan_horse2zebra", "cyclegan_face2anime",
            "cyclegan_face2anime_cpu", "cogan_mnist_edges", "cogan_mnist_negative", "cogan_mnist_cpu"} <= names


# The one config whose FID runs the real Inception here (about 10 s a config on 2 cores); the others name a tiny stand-in.
REAL_INCEPTION = "dcgan_mnist"


def with_tiny_fid(config: Path, out: Path) -> Path:
    """A copy of ``config`` whose FID callback evaluates 4 samples against 4 real images (with the real Inception for
    :data:`REAL_INCEPTION`, :class:`helpers.GreyTinyFeatures` for the others), whose
    ConditionalAccuracy trains its classifier for 2 steps and scores 8 samples, and
    whose per-resolution batch sizes of progressive growing are at most the tiny folders' batch of 8 (the 1024 px
    folder holds 16 images, fewer than StyleGAN's 32 per GPU at 8x8)."""
    settings = yaml.safe_load(config.read_text())
    side = SHRINK.get(config.stem, {}).get("img_resolution")
    for callback in settings["trainer"].get("callbacks", []):
        if callback["class_path"] == "callbacks.FID":
            callback["init_args"].update(num_samples=4, num_real=4)
            if config.stem != REAL_INCEPTION:
                callback["init_args"]["feature_extractor"] = {"class_path": "helpers.GreyTinyFeatures"}
        if callback["class_path"] == "callbacks.PPL":
            callback["init_args"].update(num_samples=4, batch_size=4)
        if callback["class_path"] == "callbacks.Equivariance":  # one batch of 4 per metric
            callback["init_args"].update(num_samples=4, batch_size=4)
        if callback["class_path"] == "callbacks.ConditionalAccuracy":  # a 2-step classifier scoring 8 samples
            callback["init_args"].update(num_samples=8, batch_size=8, classifier_steps=2, classifier_batch_size=8, classifier_width=4)
        if callback["class_path"] == "callbacks.ProgressiveGrowing" and "batch_size" in callback["init_args"]:
            callback["init_args"]["batch_size"] = {r: min(b, 8) for r, b in callback["init_args"]["batch_size"].items()}
        if callback["class_path"] == "callbacks.ProgressiveGrowing" and side is not None:  # shrunk: no stages above the size
            for name in ("batch_size", "lr"):
                if name in callback["init_args"]:
                    callback["init_args"][name] = {r: v for r, v in callback["init_args"][name].items() if int(r) <= side}
    out.write_text(yaml.safe_dump(settings))
    return out


# Neural style transfer optimises one image (no data, no discriminator): test_style_transfer_experiment_fits_a_few_steps.
STYLE_TRANSFER = [p for p in EXPERIMENTS if yaml.safe_load(p.read_text())["model"]["class_path"] == "gans.StyleTransfer"]


@pytest.mark.parametrize("config", [p for p in EXPERIMENTS if p not in STYLE_TRANSFER], ids=lambda p: p.stem)
def test_experiment_fits_a_few_steps(config: Path, mnist_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # the configs write to runs/<name> relative to the working directory
    monkeypatch.setenv("GANS_CACHE", str(tmp_path / "cache"))
    config = with_tiny_fid(config, tmp_path / config.name)
    args = ["fit", "--config", str(config), "--trainer.max_steps=4", "--trainer.max_epochs=1", "--trainer.accelerator=cpu", *overrides(config, mnist_root, tmp_path, monkeypatch)]
    run = cli(args)
    model, trainer = run.model, run.trainer
    assert trainer.global_step == 4
    assert model.images_seen > 0
    assert trainer.callback_metrics["train/d_loss"].isfinite()
    pictures = list(tmp_path.rglob("samples/latest.png"))
    assert pictures, "SampleGrid wrote no picture"
    callbacks = {c["class_path"] for c in yaml.safe_load(config.read_text())["trainer"].get("callbacks", [])}
    if "callbacks.FID" in callbacks:  # it ran at the end
        assert trainer.callback_metrics["metrics/fid"].isfinite()
    if "callbacks.PPL" in callbacks:
        assert trainer.callback_metrics["metrics/ppl"].isfinite()
    if "callbacks.Equivariance" in callbacks:  # PSNRs in dB; inf only for a bit-exact match
        assert all(float(trainer.callback_metrics[f"metrics/{name}"]) > 0 for name in ("eqt_int", "eqt_frac", "eqr"))
    if "callbacks.ConditionalAccuracy" in callbacks:  # metrics/cond_acc (one label head) or metrics/cond_acc_<head>
        scores = [v for k, v in trainer.callback_metrics.items() if k.startswith("metrics/cond_acc") and "_real" not in k]
        assert scores and all(0 <= float(v) <= 1 for v in scores)
    growing = [c["init_args"] for c in yaml.safe_load(config.read_text())["trainer"].get("callbacks", []) if c["class_path"] == "callbacks.ProgressiveGrowing"]
    if growing:  # growing starts at its first stage (4x4 unless the config says), at the config's final size
        start = growing[0].get("start_resolution", 4)
        assert trainer.callback_metrics["train/resolution"] == start and model.current_resolution == start
        assert model.resolutions[-1] == trainer.datamodule.data_shape[-1]
    checkpoints = [p.name for p in tmp_path.rglob("*.ckpt")]
    assert all("=" not in name for name in checkpoints), checkpoints


@pytest.mark.parametrize("config", STYLE_TRANSFER, ids=lambda p: p.stem)
def test_style_transfer_experiment_fits_a_few_steps(config: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every other setting of the file, on two tiny images with a random VGG-19 (no weights here) at 32 px, 1 L-BFGS
    iteration per step."""
    monkeypatch.chdir(tmp_path)
    images = write_folder(tmp_path / "images", n=2, size=(24, 32))
    run = cli(["fit", "--config", str(config), "--trainer.max_steps=2", "--trainer.accelerator=cpu", f"--model.init_args.content={images / '0.png'}",
               f"--model.init_args.style={images / '1.png'}", "--model.init_args.weights=random", "--model.init_args.image_size=32",
               "--model.init_args.lbfgs_max_iter=1"])
    assert run.trainer.global_step == 2
    assert run.trainer.callback_metrics["train/loss"].isfinite()
    assert list(tmp_path.rglob("samples/latest.png")) and list(tmp_path.rglob("samples/result.png"))


def test_predict_writes_reproducible_samples_from_a_checkpoint(mnist_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GANS_CACHE", str(tmp_path / "cache"))
    config = str(with_tiny_fid(Path(__file__).parents[1] / "experiments" / "dcgan_mnist.yaml", tmp_path / "dcgan_mnist.yaml"))
    data = overrides(Path(config), mnist_root, tmp_path) + ["--data.init_args.num_predict=10", "--data.init_args.predict_batch_size=4"]
    cli(["fit", "--config", config, "--trainer.max_steps=4", "--trainer.accelerator=cpu", "--trainer.logger=false", *data])
    ckpt = tmp_path / "runs" / "dcgan_mnist" / "checkpoints" / "last.ckpt"
    assert ckpt.exists()
    written = []
    for out in ("a", "b"):
        cli(["predict", "--config", config, f"--ckpt_path={ckpt}", "--trainer.accelerator=cpu", "--trainer.logger=false",
             f"--trainer.default_root_dir={tmp_path / out}", *data])
        written.append(sorted((tmp_path / out / "predictions").glob("*.png")))
    assert [p.name for p in written[0]] == [f"{i:06d}.png" for i in range(10)]
    assert all(a.read_bytes() == b.read_bytes() for a, b in zip(*written))
