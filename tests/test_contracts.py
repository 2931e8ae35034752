"""gans.training.contracts: the typed contracts callbacks and tools rely on, checked once at set-up; TranslationGAN's
abstract methods; one configuration convention per module family."""

from __future__ import annotations

import ast
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Callable

import lightning as L
import pytest
import torch
from helpers import TinyFeatures, quiet_trainer
from torch import Tensor, nn
from torch.utils.data import DataLoader, TensorDataset

from callbacks import EMA, FID, PPL, ProgressiveGrowing, SampleGrid
from datamodules import ImageFolderDataModule, MNISTDataModule
from gans import (
    CGAN,
    DCGAN,
    GAN,
    BigGAN,
    CoGAN,
    CycleGAN,
    Pix2Pix,
    ProGAN,
    StarGAN,
    StyleGAN,
    StyleGAN2,
)
from gans.errors import ConfigError
from gans.training import contracts
from gans.training.gan_module import GANModule
from gans.training.image_to_image import TranslationGAN

pytestmark = pytest.mark.filterwarnings("ignore:.*self.trainer. reference is not registered.*")

# Tiny instances of the real modules, and the contracts each must satisfy.
STYLE = dict(z_dim=8, w_dim=8, mapping_layers=2)
MODELS: dict[str, tuple[Callable[[], nn.Module], tuple[type, ...]]] = {
    "gan": (lambda: GAN(data_shape=(2,), z_dim=2, g_hidden=(8,), d_hidden=(8,), d_pieces=2), (contracts.Sampler, contracts.EMAHost)),
    "dcgan": (lambda: DCGAN(img_resolution=16, img_channels=1, z_dim=8, ngf=4, ndf=4), (contracts.Sampler, contracts.EMAHost)),
    "biggan": (
        lambda: BigGAN(img_resolution=16, num_classes=3, z_dim=12, g_ch=2, d_ch=2, shared_dim=8, g_attention=[16], d_attention=[8]),
        (contracts.Sampler, contracts.EMAHost),
    ),
    "progan": (lambda: ProGAN(img_resolution=8, z_dim=8, fmap_base=32, fmap_max=8, mbstd_group_size=2),
               (contracts.Sampler, contracts.EMAHost, contracts.GrowingModel)),
    "stylegan": (lambda: StyleGAN(img_resolution=8, fmap_base=32, fmap_max=8, mbstd_group_size=2, **STYLE),
                 (contracts.Sampler, contracts.EMAHost, contracts.GrowingModel, contracts.StyleModel)),
    "stylegan2": (lambda: StyleGAN2(img_resolution=8, channel_base=32, channel_max=8, **STYLE),
                  (contracts.Sampler, contracts.EMAHost, contracts.StyleModel)),
    "pix2pix": (lambda: Pix2Pix(img_resolution=16, ngf=4, ndf=4, d_layers=2), (contracts.EMAHost,)),
    "cyclegan": (lambda: CycleGAN(img_resolution=16, ngf=4, ndf=4, g_blocks=1, d_layers=2), (contracts.EMAHost,)),
    "stargan": (lambda: StarGAN(num_classes=[3, 2], domain_heads=[0], img_resolution=8, ngf=4, ndf=4, g_blocks=1), (contracts.EMAHost,)),
    "cogan": (lambda: CoGAN(z_dim=8, g_channels=(16, 8, 8, 4), d_channels=(4, 6, 16)), (contracts.EMAHost,)),
}


class Without:
    """``obj`` with every attribute but ``hidden``: a module that lacks one member."""

    def __init__(self, obj: Any, hidden: str) -> None:
        self._obj, self._hidden = obj, hidden

    def __getattr__(self, name: str) -> Any:
        if name == self._hidden:
            raise AttributeError(name)
        return getattr(self._obj, name)


@pytest.fixture(scope="module")
def models() -> dict[str, nn.Module]:
    torch.manual_seed(0)
    return {name: factory() for name, (factory, _) in MODELS.items()}


@pytest.mark.parametrize("name", list(MODELS))
def test_every_real_module_satisfies_its_contracts(models: dict[str, nn.Module], name: str) -> None:
    model, wanted = models[name], MODELS[name][1]
    for contract in wanted:
        assert contracts.require(model, contract, "test") is model
        assert contracts.missing(model, contract) == []
    for name_ in model.ema_networks:  # every averaged network is a module the EMA copies
        assert isinstance(contracts.network(model, name_, "test"), nn.Module)
    growing = contracts.GrowingModel in wanted
    assert not growing or list(model.resolutions)[-1] == model.hparams.img_resolution
    if contracts.StyleModel in wanted:  # the generator and the layers the style tools switch noise in
        assert contracts.missing(model.generator, contracts.StyleGenerator) == []
        assert any(isinstance(m, contracts.NoiseLayer) for m in model.generator.synthesis.modules())


def test_modules_lacking_a_capability_do_not_satisfy_it(models: dict[str, nn.Module]) -> None:
    for name in ("gan", "dcgan", "biggan", "stylegan2"):
        assert "set_growth" in contracts.missing(models[name], contracts.GrowingModel)
    for name in ("gan", "dcgan", "biggan", "progan"):
        assert "sampling_generator.mapping" in contracts.missing(models[name], contracts.StyleSampler)
    for name in ("pix2pix", "cyclegan", "stargan", "cogan"):
        assert contracts.missing(models[name], contracts.Sampler)  # image-to-image models draw pictures, not samples


# Each contract refuses an object that lacks exactly one of its members, in one line that names it.

CASES = [
    (contracts.Sampler, "dcgan"), (contracts.EMAHost, "cyclegan"), (contracts.GrowingModel, "progan"),
    (contracts.StyleSampler, "stylegan2"), (contracts.StyleModel, "stylegan"),
]


@pytest.mark.parametrize("contract, name", CASES, ids=[c.__name__ for c, _ in CASES])
def test_an_object_missing_one_member_is_refused_naming_it(models: dict[str, nn.Module], contract: type, name: str) -> None:
    members = contracts.members(contract)
    assert members
    for member in members:
        with pytest.raises(ConfigError) as error:
            contracts.require(Without(models[name], member), contract, "callbacks.Something", "the fix")
        message = str(error.value)
        assert "\n" not in message
        assert message.startswith("callbacks.Something needs ") and f"gans.training.contracts.{contract.__name__}" in message
        assert message.endswith(f"Without lacks {member}: the fix.")


def test_a_generator_missing_one_member_is_named_through_the_model(models: dict[str, nn.Module]) -> None:
    model = models["stylegan2"]
    for member in contracts.members(contracts.StyleGenerator):
        holder = SimpleNamespace(label_space=model.label_space, sampling_generator=Without(model.sampling_generator, member))
        with pytest.raises(ConfigError, match=rf"SimpleNamespace lacks sampling_generator\.{member}\.$"):
            contracts.require(holder, contracts.StyleSampler, "callbacks.PPL")
    mapping = Without(model.generator.mapping, "w_avg")  # a member of a member of a member
    generator = SimpleNamespace(**{m: getattr(model.generator, m) for m in contracts.members(contracts.StyleGenerator)})
    generator.mapping = mapping
    assert contracts.missing(generator, contracts.StyleGenerator) == ["mapping.w_avg"]


def test_datamodule_capabilities_are_tested_through_the_protocols(tmp_path: Path) -> None:
    folder = ImageFolderDataModule(root=str(tmp_path), img_resolution=8, batch_size=4)
    mnist = MNISTDataModule(root=str(tmp_path), img_resolution=16, download=False)
    for datamodule in (folder, mnist):
        assert isinstance(datamodule, (contracts.RealImages, contracts.CacheKeyed, contracts.ShapedData))
        assert isinstance(datamodule, contracts.RealImages) and isinstance(datamodule, contracts.CacheKeyed)
    assert isinstance(folder, contracts.GrowingData) and not isinstance(mnist, contracts.GrowingData)
    plain = L.LightningDataModule()
    assert not isinstance(plain, contracts.RealImages) and not isinstance(plain, contracts.ShapedData)
    assert contracts.data_shape(plain, DCGAN(img_resolution=16, img_channels=1, z_dim=8, ngf=4, ndf=4)) == (1, 16, 16)
    assert contracts.data_shape(mnist, None) == (1, 16, 16) and contracts.data_shape(None, plain) is None
    with pytest.raises(ConfigError, match=r"needs a datamodule that serves growth stages .*; there is none \(to provide batch_size, set_stage\): drop batch_size\.$"):
        contracts.require(None, contracts.GrowingData, "ProgressiveGrowing batch_size", "drop batch_size")


class Stated(L.LightningDataModule):
    """A datamodule that states its sample shape and classes (contracts.ShapedData, contracts.LabelledData)."""

    def __init__(self, data_shape: tuple[int, ...], num_classes: int) -> None:
        super().__init__()
        self.data_shape, self.num_classes = data_shape, num_classes

    def train_dataloader(self) -> DataLoader:
        return images()


def test_the_data_a_model_is_given_are_checked_through_the_data_contracts(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"DCGAN makes images of shape \(1, 16, 16\) but Stated gives \(1, 32, 32\)"):
        quiet_trainer(tmp_path, max_steps=1).fit(dcgan(), datamodule=Stated((1, 32, 32), 0))
    cgan = CGAN(num_classes=10, data_shape=(1, 16, 16), z_dim=4, g_hidden=(8,), d_hidden=(8,), d_pieces=2)
    with pytest.raises(ConfigError, match=r"CGAN is conditioned on 10 classes but Stated has 3: set model.init_args.num_classes: 3\."):
        quiet_trainer(tmp_path, max_steps=1).fit(cgan, datamodule=Stated((1, 16, 16), 3))
    quiet_trainer(tmp_path, max_steps=1).fit(dcgan(), datamodule=Stated((1, 16, 16), 0))  # matching data train


# A callback on an unsuitable module fails when it is set up, before any batch trains.


def images(n: int = 8, side: int = 16) -> DataLoader:
    return DataLoader(TensorDataset(torch.rand(n, 1, side, side) * 2 - 1, torch.zeros(n, dtype=torch.long)), batch_size=4)


def dcgan() -> DCGAN:
    return DCGAN(img_resolution=16, img_channels=1, z_dim=8, ngf=4, ndf=4)


@pytest.mark.parametrize(
    "callback, model, message",
    [
        (PPL(num_samples=2), dcgan, r"callbacks\.PPL needs a model that samples from a style-based generator .*; DCGAN lacks "
         r"sampling_generator\.mapping, sampling_generator\.synthesis, sampling_generator\.num_ws"),
        (ProgressiveGrowing(), dcgan, r"callbacks\.ProgressiveGrowing needs a growing model .*; DCGAN lacks resolutions, "
         r"current_resolution, alpha, set_growth: use gans\.ProGAN"),
        (ProgressiveGrowing(batch_size={8: 2}), lambda: ProGAN(img_resolution=16, z_dim=8, fmap_base=32, fmap_max=8, mbstd_group_size=2),
         r"ProgressiveGrowing batch_size needs a datamodule that serves growth stages .*; there is none"),
        (FID(num_samples=2, num_real=2, feature_extractor=TinyFeatures()),
         lambda: CoGAN(z_dim=8, g_channels=(16, 8, 8, 4), d_channels=(4, 6, 16)),
         r"callbacks\.FID needs a model that draws samples .*; CoGAN lacks label_space"),
        (SampleGrid(), lambda: Pix2Pix(img_resolution=16, ngf=4, ndf=4, d_layers=2),
         r"callbacks\.SampleGrid needs a model that draws samples .*; Pix2Pix lacks z_dim, label_space, sample, sample_indexed"),
    ],
    ids=["ppl-dcgan", "growing-dcgan", "growing-batch-size-without-datamodule", "fid-cogan", "samplegrid-pix2pix"],
)
def test_a_callback_on_an_unsuitable_module_fails_at_setup(tmp_path: Path, callback: L.Callback, model: Callable, message: str) -> None:
    module = model()
    with pytest.raises(ConfigError, match=message) as error:
        quiet_trainer(tmp_path, max_steps=2, callbacks=[callback]).fit(module, train_dataloaders=images())
    assert "\n" not in str(error.value)
    assert module.batches == 0  # refused before the first batch


class Plain(L.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.generator = nn.Linear(2, 2)

    def training_step(self, batch: Any, batch_idx: int) -> Tensor:
        return self.generator(batch[0]).sum()

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.1)


def test_ema_needs_a_host_and_the_networks_it_names(tmp_path: Path) -> None:
    loader = DataLoader(TensorDataset(torch.zeros(4, 2)), batch_size=2)
    with pytest.raises(ConfigError, match=r"callbacks\.EMA needs a module that names the networks to average .*; Plain lacks images_seen, g_steps, log_train, ema_networks"):
        quiet_trainer(tmp_path, max_steps=1, callbacks=[EMA()]).fit(Plain(), train_dataloaders=loader)

    class Misnamed(DCGAN):
        ema_networks = ("generator", "mapping")

    with pytest.raises(ConfigError, match=r"callbacks\.EMA: Misnamed names a network 'mapping' but has no nn\.Module attribute mapping\."):
        quiet_trainer(tmp_path, max_steps=1, callbacks=[EMA()]).fit(Misnamed(img_resolution=16, img_channels=1, z_dim=8, ngf=4, ndf=4),
                                                                    train_dataloaders=images())
    model = dcgan()
    assert contracts.ema_copy(model, "generator") is None and model.sampling_generator is model.generator
    quiet_trainer(tmp_path, max_steps=2, callbacks=[EMA()]).fit(model, train_dataloaders=images())
    assert model.sampling_generator is contracts.ema_copy(model, "generator") is model.generator_ema


# TranslationGAN states what a subclass must write.


def test_a_translation_model_missing_an_abstract_method_fails_at_construction() -> None:
    class NoPictures(TranslationGAN):
        def generate(self, batch: Any) -> dict[str, Tensor]:
            return {}

        def discriminator_loss(self, batch: Any, images: dict[str, Tensor]) -> Tensor:
            return torch.zeros(())

        def generator_loss(self, batch: Any, images: dict[str, Tensor]) -> Tensor:
            return torch.zeros(())

    with pytest.raises(TypeError, match="abstract class NoPictures with abstract method pictures"):
        NoPictures()
    assert TranslationGAN.__abstractmethods__ == {"generate", "discriminator_loss", "generator_loss", "pictures"}


def test_the_cli_instantiates_translation_models_and_refuses_the_abstract_base(monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    from gans.cli import cli

    monkeypatch.setenv("WANDB_MODE", "disabled")
    common = ["--trainer.logger=false", "--trainer.accelerator=cpu"]
    tiny = ["--model.init_args.img_resolution=16", "--model.init_args.ngf=4", "--model.init_args.ndf=4", "--model.init_args.d_layers=2"]
    assert type(cli(["--model", "gans.Pix2Pix", *tiny, *common], run=False).model) is Pix2Pix
    with pytest.raises(SystemExit):
        cli(["--model", "gans.training.image_to_image.TranslationGAN", *common], run=False)
    assert "abstract" in capsys.readouterr().err


# One configuration convention per family.


def test_the_gan_family_reads_its_settings_from_hparams(models: dict[str, nn.Module]) -> None:
    for name in ("gan", "dcgan", "biggan", "progan", "stylegan", "stylegan2"):
        model = models[name]
        kept = set(vars(model)) & set(model.hparams)  # settings kept as plain attributes beside the hparams
        assert kept <= {"max_nonfinite_steps", "gradient_clip_val", "max_kimg", "data_shape"}, (name, kept)
    model = dcgan()
    model.hparams.z_dim, model.hparams.lr_g = 5, 0.5  # what the module reads changes with the record
    assert model.z_dim == 5 and model.sample_z(2).shape == (2, 5)
    assert model.configure_optimizers()[1].param_groups[0]["lr"] == 0.5


def test_a_subclass_that_changes_an_argument_it_shares_with_ganmodule_is_refused() -> None:
    class Doubled(GANModule):
        def __init__(self, z_dim: int = 4) -> None:
            super().__init__(generator=nn.Linear(8, 2), discriminator=nn.Linear(2, 1), z_dim=2 * z_dim)

    with pytest.raises(ConfigError, match=r"Doubled passes z_dim=8 to GANModule but records its own z_dim=4 in hparams"):
        Doubled()


def test_the_translation_family_reads_its_settings_from_attributes() -> None:
    model = Pix2Pix(img_resolution=16, ngf=4, ndf=4, d_layers=2, lr_g=1e-3, lr_decay=0)
    model.hparams.lr_g, model.hparams.n_critic = 0.5, 7  # the record is not read back
    assert model.configure_optimizers()[1].param_groups[0]["lr"] == 1e-3 and model.critic_steps() == 1
    model.lr_g = 0.25
    assert model.configure_optimizers()[1].param_groups[0]["lr"] == 0.25


def imported_closure(start: str) -> set[str]:
    """The package modules (gans, callbacks, datamodules) that importing ``start`` imports, read from the sources
    (every import statement, deferred ones included; ``from gans import X`` resolved through the lazy exports)."""
    from gans import _EXPORTS

    root = Path(__file__).parents[1]
    packages = ("gans", "callbacks", "datamodules")

    def source(module: str) -> Path | None:
        base = root.joinpath(*module.split("."))
        for path in (base.with_suffix(".py"), base / "__init__.py"):
            if path.is_file():
                return path
        return None

    seen: set[str] = set()
    todo = [start]
    while todo:
        module = todo.pop()
        parts = module.split(".")
        for i in range(1, len(parts) + 1):  # a submodule imports its parent packages first
            name = ".".join(parts[:i])
            if name in seen or source(name) is None:
                continue
            seen.add(name)
            for node in ast.walk(ast.parse(source(name).read_text())):
                if isinstance(node, ast.Import):
                    todo += [alias.name for alias in node.names if alias.name.split(".")[0] in packages]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module and node.module.split(".")[0] in packages:
                    todo.append(node.module)
                    for alias in node.names:
                        todo.append(_EXPORTS[alias.name] if node.module == "gans" and alias.name in _EXPORTS else f"{node.module}.{alias.name}")
    return seen


@pytest.mark.parametrize("module", ["gans.tools.style_tools", "gans.tools.projector", "gans.tools.equivariance_pictures", "gans.training.contracts", "callbacks"])
def test_the_tools_and_callbacks_import_no_model(module: str) -> None:
    closure = imported_closure(module)
    assert "gans.training.contracts" in closure or module == "gans.training.contracts"
    assert not [m for m in closure if m.startswith("gans.models")]
    assert "gans.models.style.base" in imported_closure("gans.models.style.stylegan2")  # the reader does see model imports
