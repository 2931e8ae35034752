"""Flickr-Faces-HQ (Karras et al. 2019, "A Style-Based Generator Architecture for GANs", arXiv:1812.04948):
70,000 aligned 1024x1024 face PNGs, the data of StyleGAN and of ProGAN's successors.

Any folder or zip of the PNGs works, at any size: ``images1024x1024`` serves every power of two up to
1024, ``thumbnails128x128`` up to 128. Left-right flips are on by default, as in the papers' FFHQ runs.
"""

from __future__ import annotations

from datamodules.images import ImageFolderDataModule

FFHQ_URL = "https://github.com/NVlabs/ffhq-dataset"


class FFHQDataModule(ImageFolderDataModule):
    """FFHQ faces, unlabelled, at any power-of-two ``img_resolution`` up to the source's size."""

    def __init__(self, root: str = "data/ffhq", img_resolution: int = 1024, xflip: bool = True, **kwargs) -> None:
        """
        Args:
            root: the folder (e.g. ``images1024x1024/`` or ``thumbnails128x128/``) or a zip of the PNGs.
            img_resolution: image side, a power of two >= 4, at most the source's size (1024 or 128).
            xflip: flip training images left-right with probability 1/2.
            **kwargs: the other arguments of :class:`datamodules.ImageFolderDataModule` (``batch_size``,
                ``cache``, ``num_workers``, ...).
        """
        super().__init__(root=root, img_resolution=img_resolution, xflip=xflip, **kwargs)

    def missing_data_hint(self) -> str:
        return (
            f"FFHQ cannot be downloaded automatically: get it from {FFHQ_URL} (python download_ffhq.py --images for "
            "1024 px PNGs, or --thumbs for 128 px thumbnails; or its Kaggle / Google Drive mirrors) and put the "
            f"folder or zip at {self.root}."
        )
