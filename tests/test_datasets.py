"""Tests for the datasets (uticompile.datasets) and for augmentation and batching (models).

Every file-backed dataset is exercised with tiny files written here in the real on-disk format,
so nothing is downloaded.
"""

from __future__ import annotations

import gzip
import os
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import torch

from uticompile.cli.options import flag_message
from uticompile.datasets import DATASETS, AugmentSpec, Dataset, load_dataset
from uticompile.datasets.convert import channel_stats, resize_uint8
from uticompile.errors import ConfigError, DatasetError
from uticompile.models.augment import augment_batch, to_float
from uticompile.models.batches import iterate_batches, num_batches

CIFAR_FILES = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
FMNIST_FILES = [
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
]
SVHN_FILES = ["train_32x32.mat", "test_32x32.mat"]


# --------------------------------------------------------------------------- file writers


def _stats(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Reference per-channel mean/std in [0,1] units, straight from numpy float64."""
    f = x.astype(np.float64) / 255.0
    return f.mean(axis=(0, 2, 3)), f.std(axis=(0, 2, 3))


def _cifar_batch(seed: int, n: int = 10) -> dict[bytes, object]:
    """A batch dict shaped like the real ones (bytes keys, uint8 [N,3072], list of labels)."""
    rng = np.random.default_rng(seed)
    return {
        b"batch_label": b"tiny batch",
        b"labels": [int(v) for v in rng.integers(0, 10, n)],
        b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
        b"filenames": [f"img_{i}.png".encode() for i in range(n)],
    }


def _write_cifar(root: Path) -> dict[str, dict[bytes, object]]:
    root.mkdir(parents=True, exist_ok=True)
    batches = {}
    for seed, name in enumerate(CIFAR_FILES):
        batch = _cifar_batch(seed)
        (root / name).write_bytes(pickle.dumps(batch, protocol=2))
        batches[name] = batch
    return batches


def _py2_pickle(data: np.ndarray, labels: list[int]) -> bytes:
    """Hand-assemble a batch the way Python 2 wrote the real files.

    Python 2 str opcodes (SHORT_BINSTRING/BINSTRING) instead of _codecs.encode, and numpy's
    array rebuilt through numpy.core.multiarray._reconstruct.
    """

    def short(b: bytes) -> bytes:
        return b"U" + bytes([len(b)]) + b

    raw = data.tobytes()
    array = (
        b"cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\nK\x00\x85"
        + short(b"b")
        + b"\x87R(K\x01K"
        + bytes([data.shape[0]])
        + b"M\x00\x0c\x86cnumpy\ndtype\n"
        + short(b"u1")
        + b"K\x00K\x01\x87R(K\x03"
        + short(b"|")
        + b"NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb\x89T"
        + struct.pack("<I", len(raw))
        + raw
        + b"tb"
    )
    label_list = b"](" + b"".join(b"K" + bytes([v]) for v in labels) + b"e"
    return b"\x80\x02}(" + short(b"data") + array + short(b"labels") + label_list + b"u."


def _idx_bytes(magic: int, data: np.ndarray) -> bytes:
    header = struct.pack(">I", magic) + struct.pack(f">{data.ndim}I", *data.shape)
    return header + data.astype(np.uint8).tobytes()


def _write_gz(path: Path, payload: bytes) -> None:
    with gzip.open(path, "wb") as handle:
        handle.write(payload)


def _write_fmnist(root: Path, n_train: int = 12, n_test: int = 5) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(7)
    arrays = {
        "xtr": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "ytr": rng.integers(0, 10, n_train).astype(np.uint8),
        "xte": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "yte": rng.integers(0, 10, n_test).astype(np.uint8),
    }
    _write_gz(root / FMNIST_FILES[0], _idx_bytes(0x803, arrays["xtr"]))
    _write_gz(root / FMNIST_FILES[1], _idx_bytes(0x801, arrays["ytr"]))
    _write_gz(root / FMNIST_FILES[2], _idx_bytes(0x803, arrays["xte"]))
    _write_gz(root / FMNIST_FILES[3], _idx_bytes(0x801, arrays["yte"]))
    return arrays


def _write_svhn(root: Path) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(3)
    arrays = {
        "xtr": rng.integers(0, 256, (32, 32, 3, 8), dtype=np.uint8),
        "ytr": np.array([[10], [1], [2], [3], [4], [5], [9], [10]], dtype=np.uint8),
        "xte": rng.integers(0, 256, (32, 32, 3, 4), dtype=np.uint8),
        "yte": np.array([[7], [10], [8], [6]], dtype=np.uint8),
    }
    scipy.io.savemat(root / SVHN_FILES[0], {"X": arrays["xtr"], "y": arrays["ytr"]})
    scipy.io.savemat(root / SVHN_FILES[1], {"X": arrays["xte"], "y": arrays["yte"]})
    return arrays


# --------------------------------------------------------------------------- digits


@pytest.fixture(scope="module")
def digits() -> Dataset:
    return load_dataset("digits")


def test_registry_names() -> None:
    assert DATASETS == ("digits", "cifar10", "fmnist", "svhn")


def test_digits_shapes_split_and_stats(digits: Dataset) -> None:
    assert digits.x_train.shape == (1437, 1, 32, 32)
    assert digits.x_test.shape == (360, 1, 32, 32)
    assert digits.x_train.dtype == np.uint8
    assert digits.y_train.dtype == np.int64
    assert digits.input_shape == (1, 32, 32)
    assert digits.num_classes == 10
    assert set(np.unique(digits.y_train)) == set(range(10))
    # Stratified: each class keeps about 80 % of its samples in train.
    counts = np.bincount(digits.y_train, minlength=10) + np.bincount(digits.y_test, minlength=10)
    assert np.all(np.abs(np.bincount(digits.y_train, minlength=10) - 0.8 * counts) <= 1)
    mean, std = _stats(digits.x_train)
    np.testing.assert_allclose(digits.mean, mean, rtol=1e-12)
    np.testing.assert_allclose(digits.std, std, rtol=1e-12)
    assert digits.augment == AugmentSpec(crop_padding=2)


def test_digits_deterministic(digits: Dataset) -> None:
    again = load_dataset("digits")
    np.testing.assert_array_equal(again.x_train, digits.x_train)
    np.testing.assert_array_equal(again.y_test, digits.y_test)
    assert again.mean == digits.mean
    assert again.std == digits.std


def test_digits_native_size_keeps_scaled_values() -> None:
    from sklearn.datasets import load_digits

    ds = load_dataset("digits", size=8)
    assert ds.x_train.shape == (1437, 1, 8, 8)
    allowed = set(np.rint(np.arange(17) * 255.0 / 16.0).astype(int).tolist())
    assert set(np.unique(ds.x_train).tolist()) <= allowed
    assert ds.x_train.max() == 255
    # The split is a permutation of the whole set.
    total = np.concatenate([ds.x_train, ds.x_test]).reshape(1797, -1)
    source = np.rint(load_digits().images.reshape(1797, -1) * 255.0 / 16.0).astype(np.uint8)
    assert sorted(map(bytes, total)) == sorted(map(bytes, source))


def test_digits_to_three_channels(digits: Dataset) -> None:
    ds = load_dataset("digits", channels=3)
    assert ds.input_shape == (3, 32, 32)
    for c in range(3):
        np.testing.assert_array_equal(ds.x_train[:, c], digits.x_train[:, 0])
    assert ds.mean == digits.mean * 3
    assert ds.std == digits.std * 3


# --------------------------------------------------------------------------- cifar10


@pytest.mark.parametrize("nested", [False, True])
def test_cifar10_loads(tmp_path: Path, nested: bool) -> None:
    root = tmp_path / "cifar-10-batches-py" if nested else tmp_path
    batches = _write_cifar(root)
    ds = load_dataset("cifar10", data_dir=tmp_path)
    assert ds.x_train.shape == (50, 3, 32, 32)
    assert ds.x_test.shape == (10, 3, 32, 32)
    assert ds.y_train.dtype == np.int64
    np.testing.assert_array_equal(ds.y_train[10:20], batches["data_batch_2"][b"labels"])
    np.testing.assert_array_equal(ds.y_test, batches["test_batch"][b"labels"])
    # Row layout is 1024 red, then 1024 green, then 1024 blue values, row-major.
    data = batches["data_batch_3"][b"data"]
    assert isinstance(data, np.ndarray)
    c, y, x = 2, 5, 17
    assert ds.x_train[23, c, y, x] == data[3, c * 1024 + y * 32 + x]
    assert ds.mean == (0.4913, 0.4821, 0.4465)
    assert ds.std == (0.2023, 0.1994, 0.2010)
    assert ds.augment == AugmentSpec(crop_padding=4, hflip=True, cutout=16)


def test_cifar10_python2_pickle(tmp_path: Path) -> None:
    _write_cifar(tmp_path)
    data = np.random.default_rng(11).integers(0, 256, (4, 3072), dtype=np.uint8)
    (tmp_path / "test_batch").write_bytes(_py2_pickle(data, [3, 1, 4, 1]))
    ds = load_dataset("cifar10", data_dir=tmp_path)
    np.testing.assert_array_equal(ds.x_test.reshape(4, 3072), data)
    np.testing.assert_array_equal(ds.y_test, [3, 1, 4, 1])


def test_cifar10_grey_and_resize(tmp_path: Path) -> None:
    _write_cifar(tmp_path)
    rgb = load_dataset("cifar10", data_dir=tmp_path)
    grey = load_dataset("cifar10", data_dir=tmp_path, channels=1)
    assert grey.input_shape == (1, 32, 32)
    expected = np.rint(rgb.x_train.astype(np.float32).mean(axis=1, keepdims=True))
    np.testing.assert_array_equal(grey.x_train, expected.astype(np.uint8))
    mean, std = _stats(grey.x_train)
    np.testing.assert_allclose(grey.mean, mean, rtol=1e-12)
    np.testing.assert_allclose(grey.std, std, rtol=1e-12)
    small = load_dataset("cifar10", data_dir=tmp_path, size=16)
    assert small.x_test.shape == (10, 3, 16, 16)
    assert small.x_test.dtype == np.uint8


def test_cifar10_refuses_foreign_globals(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self) -> tuple[object, tuple[str]]:
            return (os.system, (f"touch {marker}",))

    _write_cifar(tmp_path)
    (tmp_path / "data_batch_1").write_bytes(pickle.dumps({b"data": Evil()}, protocol=2))
    with pytest.raises(DatasetError, match=r"data_batch_1.*disallowed pickle global"):
        load_dataset("cifar10", data_dir=tmp_path)
    assert not marker.exists()


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b"not a pickle at all", "not a readable CIFAR-10 batch"),
        (pickle.dumps([1, 2, 3], protocol=2), "expected a dict"),
        (pickle.dumps({b"labels": [1]}, protocol=2), "missing"),
        (
            pickle.dumps({b"data": np.zeros((2, 100), np.uint8), b"labels": [1, 2]}, protocol=2),
            "3072",
        ),
        (
            pickle.dumps({b"data": np.zeros((2, 3072), np.uint8), b"labels": [1]}, protocol=2),
            "2 images but 1 labels",
        ),
        (
            pickle.dumps({b"data": np.zeros((1, 3072), np.uint8), b"labels": [10]}, protocol=2),
            "out of range",
        ),
    ],
)
def test_cifar10_malformed_batch(tmp_path: Path, payload: bytes, message: str) -> None:
    _write_cifar(tmp_path)
    pickled = pickle.dumps(_cifar_batch(0), protocol=2)
    (tmp_path / "test_batch").write_bytes(payload)
    with pytest.raises(DatasetError, match=message) as info:
        load_dataset("cifar10", data_dir=tmp_path)
    assert "test_batch" in str(info.value)
    (tmp_path / "test_batch").write_bytes(pickled[: len(pickled) // 2])
    with pytest.raises(DatasetError, match="test_batch"):
        load_dataset("cifar10", data_dir=tmp_path)


# --------------------------------------------------------------------------- fmnist


def test_fmnist_loads_and_resizes(tmp_path: Path) -> None:
    arrays = _write_fmnist(tmp_path)
    native = load_dataset("fmnist", data_dir=tmp_path, size=28)
    assert native.x_train.shape == (12, 1, 28, 28)
    np.testing.assert_array_equal(native.x_train[:, 0], arrays["xtr"])
    np.testing.assert_array_equal(native.y_test, arrays["yte"].astype(np.int64))
    assert native.x_train[4, 0, 3, 20] == arrays["xtr"][4, 3, 20]

    ds = load_dataset("fmnist", data_dir=tmp_path)
    assert ds.x_train.shape == (12, 1, 32, 32)
    assert ds.x_test.shape == (5, 1, 32, 32)
    assert ds.x_train.dtype == np.uint8
    mean, std = _stats(ds.x_train)
    np.testing.assert_allclose(ds.mean, mean, rtol=1e-12)
    np.testing.assert_allclose(ds.std, std, rtol=1e-12)
    assert ds.augment == AugmentSpec(crop_padding=4, hflip=True)

    rgb = load_dataset("fmnist", data_dir=tmp_path, channels=3)
    assert rgb.input_shape == (3, 32, 32)
    np.testing.assert_array_equal(rgb.x_train[:, 2], ds.x_train[:, 0])


def test_resize_of_constant_image_is_exact(tmp_path: Path) -> None:
    root = tmp_path
    _write_fmnist(root)
    flat = np.full((3, 28, 28), 77, np.uint8)
    _write_gz(root / FMNIST_FILES[2], _idx_bytes(0x803, flat))
    _write_gz(root / FMNIST_FILES[3], _idx_bytes(0x801, np.array([1, 2, 3], np.uint8)))
    for size in (8, 32, 40):
        ds = load_dataset("fmnist", data_dir=root, size=size)
        assert ds.x_test.shape == (3, 1, size, size)
        assert np.all(ds.x_test == 77)


@pytest.mark.parametrize(
    ("index", "payload", "message"),
    [
        (0, b"\x1f\x8b\x08\x00truncated", "not a readable gzip"),
        (0, _idx_bytes(0x801, np.zeros((12, 28, 28), np.uint8)), "bad idx magic"),
        (1, b"\x00\x00\x08", "shorter than the idx header"),
        (0, _idx_bytes(0x803, np.zeros((12, 28, 28), np.uint8))[:-5], "need 9408 bytes"),
        (1, _idx_bytes(0x801, np.zeros((11,), np.uint8)), "12 images but .* 11 labels"),
        (3, _idx_bytes(0x801, np.full((5,), 10, np.uint8)), "out of range"),
    ],
)
def test_fmnist_malformed(tmp_path: Path, index: int, payload: bytes, message: str) -> None:
    _write_fmnist(tmp_path)
    target = tmp_path / FMNIST_FILES[index]
    if payload.startswith(b"\x1f\x8b"):
        target.write_bytes(payload)
    else:
        _write_gz(target, payload)
    with pytest.raises(DatasetError, match=message) as info:
        load_dataset("fmnist", data_dir=tmp_path)
    assert FMNIST_FILES[index] in str(info.value)


def test_fmnist_truncated_gzip_stream(tmp_path: Path) -> None:
    _write_fmnist(tmp_path)
    target = tmp_path / FMNIST_FILES[2]
    data = target.read_bytes()
    target.write_bytes(data[: len(data) // 2])
    with pytest.raises(DatasetError, match=FMNIST_FILES[2]):
        load_dataset("fmnist", data_dir=tmp_path)


# --------------------------------------------------------------------------- svhn


def test_svhn_loads(tmp_path: Path) -> None:
    arrays = _write_svhn(tmp_path)
    ds = load_dataset("svhn", data_dir=tmp_path)
    assert ds.x_train.shape == (8, 3, 32, 32)
    assert ds.x_test.shape == (4, 3, 32, 32)
    np.testing.assert_array_equal(ds.y_train, [0, 1, 2, 3, 4, 5, 9, 0])
    np.testing.assert_array_equal(ds.y_test, [7, 0, 8, 6])
    assert ds.y_train.dtype == np.int64
    # X is (H, W, C, N): pixel (y=4, x=30, c=1) of sample 6.
    assert ds.x_train[6, 1, 4, 30] == arrays["xtr"][4, 30, 1, 6]
    mean, std = _stats(ds.x_train)
    np.testing.assert_allclose(ds.mean, mean, rtol=1e-12)
    np.testing.assert_allclose(ds.std, std, rtol=1e-12)
    assert ds.augment == AugmentSpec(crop_padding=4)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ({"y": np.ones((8, 1), np.uint8)}, "missing the 'X' or 'y'"),
        ({"X": np.zeros((32, 32, 3, 8), np.uint8)}, "missing the 'X' or 'y'"),
        ({"X": np.zeros((32, 32, 3, 8), np.uint8), "y": np.ones((7, 1))}, "8 numeric labels"),
        ({"X": np.zeros((32, 32, 3, 8), np.uint8), "y": np.full((8, 1), 11)}, "out of range"),
        ({"X": np.zeros((32, 32, 8), np.uint8), "y": np.ones((8, 1))}, "X must be uint8"),
    ],
)
def test_svhn_malformed(tmp_path: Path, content: dict[str, np.ndarray], message: str) -> None:
    _write_svhn(tmp_path)
    scipy.io.savemat(tmp_path / SVHN_FILES[0], content)
    with pytest.raises(DatasetError, match=message) as info:
        load_dataset("svhn", data_dir=tmp_path)
    assert SVHN_FILES[0] in str(info.value)


def test_svhn_garbage_mat(tmp_path: Path) -> None:
    _write_svhn(tmp_path)
    (tmp_path / SVHN_FILES[1]).write_bytes(b"MATLAB garbage" * 20)
    with pytest.raises(DatasetError, match=r"not a readable \.mat"):
        load_dataset("svhn", data_dir=tmp_path)


# --------------------------------------------------------------------------- argument errors


def test_unknown_name_lists_known() -> None:
    with pytest.raises(DatasetError, match="digits, cifar10, fmnist, svhn"):
        load_dataset("imagenet")


@pytest.mark.parametrize("size", [0, 7, -32])
def test_bad_size(size: int) -> None:
    with pytest.raises(DatasetError, match="size"):
        load_dataset("digits", size=size)


@pytest.mark.parametrize("channels", [0, 2, 4])
def test_bad_channels(channels: int) -> None:
    with pytest.raises(DatasetError, match="channels"):
        load_dataset("digits", channels=channels)


@pytest.mark.parametrize("name", ["cifar10", "fmnist", "svhn"])
def test_missing_data_dir(tmp_path: Path, name: str) -> None:
    with pytest.raises(DatasetError, match=r"^data_dir is needed") as need:
        load_dataset(name)
    assert flag_message(need.value).startswith("--data-dir is needed")
    missing = tmp_path / "nowhere"
    with pytest.raises(DatasetError, match=f"missing directory {missing}") as info:
        load_dataset(name, data_dir=missing)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("name", "writer", "files"),
    [
        ("cifar10", _write_cifar, CIFAR_FILES),
        ("fmnist", _write_fmnist, FMNIST_FILES),
        ("svhn", _write_svhn, SVHN_FILES),
    ],
)
def test_each_missing_file_is_named(
    tmp_path: Path, name: str, writer: object, files: list[str]
) -> None:
    assert callable(writer)
    for missing in files:
        root = tmp_path / missing.replace(".", "_")
        root.mkdir()
        writer(root)
        (root / missing).unlink()
        with pytest.raises(DatasetError) as info:
            load_dataset(name, data_dir=root)
        message = str(info.value)
        assert message.startswith(f"{name}: missing {root / missing} (expected")
        assert "\n" not in message


# --------------------------------------------------------------------------- augmentation


def _asymmetric_batch(b: int = 64, c: int = 2, h: int = 6, w: int = 7) -> torch.Tensor:
    """Distinct nonzero pixels, so any crop or flip is recognizable."""
    img = (torch.arange(c * h * w) + 1).to(torch.uint8).view(1, c, h, w)
    return img.repeat(b, 1, 1, 1)


def test_augment_spec_validates() -> None:
    with pytest.raises(ConfigError):
        AugmentSpec(crop_padding=-1)
    with pytest.raises(ConfigError):
        AugmentSpec(cutout=-3)


def test_augment_deterministic_per_seed() -> None:
    x = torch.randint(0, 256, (32, 3, 16, 16), dtype=torch.uint8)
    spec = AugmentSpec(crop_padding=3, hflip=True, cutout=5)
    a = augment_batch(x, spec, torch.Generator().manual_seed(1))
    b = augment_batch(x, spec, torch.Generator().manual_seed(1))
    c = augment_batch(x, spec, torch.Generator().manual_seed(2))
    assert a.dtype == torch.uint8
    assert a.shape == x.shape
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_identity_spec_returns_input() -> None:
    x = _asymmetric_batch(4)
    assert augment_batch(x, AugmentSpec(), torch.Generator()) is x


def test_hflip_mirrors_or_keeps() -> None:
    x = _asymmetric_batch()
    out = augment_batch(x, AugmentSpec(hflip=True), torch.Generator().manual_seed(0))
    same = (out == x).flatten(1).all(1)
    mirrored = (out == x.flip(3)).flatten(1).all(1)
    assert torch.all(same | mirrored)
    assert same.any()
    assert mirrored.any()


def _crop_candidates(img: torch.Tensor, p: int) -> list[torch.Tensor]:
    c, h, w = img.shape
    padded = torch.zeros((c, h + 2 * p, w + 2 * p), dtype=img.dtype)
    padded[:, p : p + h, p : p + w] = img
    return [
        padded[:, dy : dy + h, dx : dx + w] for dy in range(2 * p + 1) for dx in range(2 * p + 1)
    ]


@pytest.mark.parametrize("hflip", [False, True])
def test_crop_only_shifts(hflip: bool) -> None:
    x = _asymmetric_batch()
    p = 2
    out = augment_batch(x, AugmentSpec(crop_padding=p, hflip=hflip), torch.Generator())
    assert out.shape == x.shape
    crops = _crop_candidates(x[0], p)
    allowed = crops + [crop.flip(2) for crop in crops] if hflip else crops
    matched = set()
    for sample in out:
        hits = [i for i, cand in enumerate(allowed) if torch.equal(sample, cand)]
        assert hits, "output is not a shifted (or mirrored shifted) copy"
        matched.add(hits[0])
    assert len(matched) > 5  # offsets really vary across the batch


def test_cutout_zeroes_one_clipped_square() -> None:
    x = torch.full((128, 3, 12, 12), 200, dtype=torch.uint8)
    k = 5
    out = augment_batch(x, AugmentSpec(cutout=k), torch.Generator().manual_seed(3))
    assert out.shape == x.shape
    assert set(out.unique().tolist()) <= {0, 200}
    full = 0
    for sample in out:
        assert torch.equal(sample[0], sample[1])  # same hole in every channel
        ys, xs = torch.nonzero(sample[0] == 0, as_tuple=True)
        assert ys.numel() > 0  # the centre is inside the image, so the hole is never empty
        height = int(ys.max() - ys.min() + 1)
        width = int(xs.max() - xs.min() + 1)
        assert height <= k
        assert width <= k
        assert ys.numel() == height * width  # a filled rectangle
        full += int(height == k and width == k)
    assert full > 0


def test_to_float_normalizes() -> None:
    x = np.array([[[[0, 255]], [[51, 102]]]], dtype=np.uint8)
    out = to_float(x, (0.5, 0.2), (0.5, 0.4))
    assert out.dtype == torch.float32
    expected = torch.tensor([[[[-1.0, 1.0]], [[0.0, 0.5]]]])
    torch.testing.assert_close(out, expected)


# --------------------------------------------------------------------------- batches


def _indexed_dataset(n: int = 23) -> Dataset:
    """Image i is filled with value i, label i: pairing and coverage are easy to check."""
    x = np.broadcast_to(np.arange(n, dtype=np.uint8)[:, None, None, None], (n, 1, 8, 8)).copy()
    y = np.arange(n, dtype=np.int64)
    return Dataset(
        name="indexed",
        x_train=x,
        y_train=y,
        x_test=x[:7].copy(),
        y_test=y[:7].copy(),
        num_classes=n,
        mean=(0.0,),
        std=(1.0,),
        augment=AugmentSpec(crop_padding=1, hflip=True),
    )


@pytest.mark.parametrize(("shuffle", "augment"), [(False, False), (True, False), (True, True)])
def test_batches_cover_each_sample_once(shuffle: bool, augment: bool) -> None:
    ds = _indexed_dataset()
    assert num_batches(ds, "train", 5) == 5
    batches = list(
        iterate_batches(
            ds, "train", 5, shuffle=shuffle, augment=augment, generator=torch.Generator()
        )
    )
    assert [len(yb) for _, yb in batches] == [5, 5, 5, 5, 3]
    labels = torch.cat([yb for _, yb in batches])
    assert labels.dtype == torch.int64
    assert sorted(labels.tolist()) == list(range(23))
    if not shuffle:
        assert labels.tolist() == list(range(23))
    for xb, yb in batches:
        assert xb.dtype == torch.float32
        assert xb.shape[1:] == (1, 8, 8)
        # Image content still belongs to its label (augmentation only adds zero borders).
        peak = (xb.flatten(1).max(1).values * 255).round().long()
        assert torch.equal(peak, yb)


def test_batches_deterministic_and_test_split() -> None:
    ds = _indexed_dataset()

    def epoch(seed: int) -> list[int]:
        gen = torch.Generator().manual_seed(seed)
        batches = iterate_batches(ds, "train", 4, shuffle=True, augment=True, generator=gen)
        return torch.cat([yb for _, yb in batches]).tolist()

    assert epoch(5) == epoch(5)
    assert epoch(5) != epoch(6)
    test = list(iterate_batches(ds, "test", 4, shuffle=False, augment=True, generator=None))
    assert num_batches(ds, "test", 4) == len(test) == 2
    xs = torch.cat([xb for xb, _ in test])
    torch.testing.assert_close(xs, to_float(ds.x_test, ds.mean, ds.std))  # never augmented


def test_batches_reject_bad_arguments() -> None:
    ds = _indexed_dataset()
    with pytest.raises(ValueError, match="split"):
        iterate_batches(ds, "val", 4, shuffle=False, augment=False, generator=None)
    with pytest.raises(ValueError, match="batch_size"):
        num_batches(ds, "train", 0)


def test_digits_batches_normalized(digits: Dataset) -> None:
    gen = torch.Generator().manual_seed(0)
    xs = torch.cat(
        [
            xb
            for xb, _ in iterate_batches(
                digits, "train", 512, shuffle=False, augment=False, generator=gen
            )
        ]
    )
    assert abs(float(xs.mean())) < 1e-4
    assert abs(float(xs.std()) - 1.0) < 1e-3
    ref_mean, ref_std = channel_stats(digits.x_train)
    assert (ref_mean, ref_std) == (digits.mean, digits.std)


@pytest.mark.parametrize(("side", "size"), [(8, 16), (8, 32), (5, 40), (7, 14)])
def test_power_of_two_enlargement_needs_no_torch_and_equals_torch(side: int, size: int) -> None:
    """The numpy path (digits 8 -> 32) gives torch's pixels, ties (x.5) rounded to even alike."""
    rng = np.random.default_rng(side * size)
    x = rng.integers(0, 256, (64, 3, side, side), dtype=np.uint8)
    x[0] = 0
    x[0, :, ::2, ::2] = 255  # checkerboard: many interpolated values end in .5
    ref = torch.nn.functional.interpolate(
        torch.from_numpy(x).to(torch.float32),
        size=(size, size),
        mode="bilinear",
        align_corners=False,
    )
    want = ref.round().clamp(0, 255).to(torch.uint8).numpy()
    np.testing.assert_array_equal(resize_uint8(x, size), want)
