"""gans: generative adversarial networks for PyTorch Lightning, one paper-faithful module per variant."""

from gans.acgan import ACGAN
from gans.base import GANModule
from gans.biggan import BigGAN
from gans.core import AdversarialModule
from gans.cgan import CGAN
from gans.cogan import CoGAN
from gans.cyclegan import CycleGAN
from gans.dcgan import DCGAN
from gans.gan import GAN
from gans.lsgan import LSGAN
from gans.pix2pix import Pix2Pix
from gans.progan import ProGAN
from gans.sagan import SAGAN
from gans.sngan import ProjectionGAN, SNGAN
from gans.stargan import StarGAN
from gans.style_transfer import StyleTransfer
from gans.stylegan import StyleGAN
from gans.stylegan2 import StyleGAN2
from gans.translation import TranslationGAN
from gans.wgan import WGAN
from gans.wgan_gp import WGANGP

__all__ = ["AdversarialModule", "GANModule", "GAN", "CGAN", "CoGAN", "CycleGAN", "DCGAN", "ACGAN", "LSGAN", "Pix2Pix", "ProGAN", "SAGAN", "BigGAN", "SNGAN", "ProjectionGAN", "StarGAN", "StyleGAN", "StyleGAN2", "StyleTransfer", "TranslationGAN", "WGAN", "WGANGP"]
__version__ = "0.1.0"
