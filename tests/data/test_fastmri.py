"""fastMRI knee data: the phantom, volume splits, the lazy dataset, its cache, noise, bad files."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

import i2m2.data.fastmri as fastmri
from i2m2.data.fastmri import load_fastmri, split_volumes
from i2m2.data.fastmri_labels import read_file_list
from i2m2.data.fastmri_phantom import SIMULATED, phantom_max_width, write_phantom_dataset
from i2m2.errors import DataError

SIZE = 16


@pytest.fixture(scope="module")
def phantom(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_phantom_dataset(tmp_path_factory.mktemp("phantom"), volumes=8, slices=3, size=SIZE, seed=1)


def load(root: Path, **kwargs: object) -> tuple[fastmri.FastMRISlices, ...]:
    return load_fastmri(root, seed=0, crop=SIZE, max_width=phantom_max_width(SIZE), **kwargs)  # type: ignore[arg-type]


# --- phantom, loader, splits ------------------------------------------------------------------------------


def test_phantom_is_written_in_the_fastmri_layout_and_deterministic(phantom: Path, tmp_path: Path) -> None:
    files = sorted((phantom / "singlecoil_train").glob("*.h5"))
    assert [f.name for f in files[:2]] == ["file1000001.h5", "file1000002.h5"] and len(files) == 8
    with h5py.File(files[0], "r") as f:
        assert set(f) == {"kspace", "reconstruction_rss", "reconstruction_esc", "ismrmrd_header"}
        slices, height, width = f["kspace"].shape
        assert (slices, height) == (3, 2 * SIZE) and SIZE < width <= phantom_max_width(SIZE)
        assert f["kspace"].dtype == np.complex64 and f["reconstruction_rss"].dtype == np.float32
        assert f["reconstruction_rss"].shape == f["reconstruction_esc"].shape == (3, SIZE, SIZE)
        assert f.attrs["simulated"] == SIMULATED and f.attrs["acquisition"] == "CORPD_FBK"
        first = f["kspace"][()]
    assert "SIMULATED" in (phantom / "README.txt").read_text()
    knee = (phantom / "Annotations" / "knee.csv").read_text().splitlines()
    assert knee[0] == "file,slice,study_level,x,y,width,height,label"
    assert all(len(line.split(",")) == 8 for line in knee)
    assert read_file_list(phantom / "Annotations" / "knee_file_list.csv")[0] == "file1000001"
    again = write_phantom_dataset(tmp_path, volumes=8, slices=3, size=SIZE, seed=1)
    with h5py.File(again / "singlecoil_train" / "file1000001.h5", "r") as f:
        np.testing.assert_array_equal(f["kspace"][()], first)
    assert (again / "Annotations" / "knee.csv").read_text().splitlines() == knee


def test_loader_splits_by_volume_and_reads_the_phantom(phantom: Path) -> None:
    train, val, test = load(phantom)
    names = [set(part.volume_names) for part in (train, val, test)]
    assert not (names[0] & names[1] or names[0] & names[2] or names[1] & names[2])
    assert len(names[0] | names[1] | names[2]) == 8 and [len(n) for n in names] == [6, 1, 1]
    assert train.labels.shape == (len(train), 4) and train.labels.dtype == torch.long
    assert train.modalities == ("magnitude", "phase", "rss")
    x, y = train[1]
    assert {m: (tuple(t.shape), t.dtype) for m, t in x.items()} == {
        m: ((1, SIZE, SIZE), torch.float32) for m in train.modalities
    }
    assert torch.equal(y, train.labels[1])
    assert float(x["phase"].abs().max()) <= np.pi + 1e-6


def test_split_volumes_is_seeded_disjoint_and_70_15_15() -> None:
    names = [f"file{i}" for i in range(40)]
    train, val, test = split_volumes(names, seed=3)
    assert (len(train), len(val), len(test)) == (28, 6, 6)
    assert sorted(train + val + test) == sorted(names)
    assert split_volumes(list(reversed(names)), seed=3) == (train, val, test)  # order of input irrelevant
    assert split_volumes(names, seed=4) != (train, val, test)


def test_dataset_reads_lazily_one_slice_per_access(phantom: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[list[int]] = []
    real = fastmri.read_slices

    def counting(volume, indices, prep, modalities):  # type: ignore[no-untyped-def]
        calls.append(list(indices))
        return real(volume, indices, prep, modalities)

    monkeypatch.setattr(fastmri, "read_slices", counting)
    train, _, _ = load(phantom)
    assert calls == []  # construction read headers and CSVs only
    train[4]
    assert calls == [[4 % 3]]  # one slice of one volume


def test_cache_is_written_once_per_volume_and_gives_the_same_slices(
    phantom: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    plain, _, _ = load(phantom)
    expected = plain[2][0]["phase"]
    cached, _, _ = load(phantom, cache_dir=tmp_path)
    x, _ = cached[0]
    cached[1]
    assert len(list(tmp_path.glob("*.npy"))) == 1  # slices 0 and 1 share a volume
    for m, t in plain[0][0].items():
        torch.testing.assert_close(x[m], t)

    def no_reads(*args: object) -> None:
        raise AssertionError("a cache hit must not read the HDF5 file")

    monkeypatch.setattr(fastmri, "read_slices", no_reads)
    again, _, _ = load(phantom, cache_dir=tmp_path)
    torch.testing.assert_close(again[2][0]["phase"], expected)
    noisy = cached.with_noise(10.0)
    assert noisy.prep.snr_db == 10.0 and cached.prep.snr_db is None


def test_test_time_noise_is_seeded_and_only_on_the_test_split(phantom: Path) -> None:
    train, _, test = load(phantom, snr_db=5.0)
    clean_train, _, clean_test = load(phantom)
    torch.testing.assert_close(train[0][0]["magnitude"], clean_train[0][0]["magnitude"])
    noisy = test[0][0]
    assert not torch.equal(noisy["magnitude"], clean_test[0][0]["magnitude"])
    torch.testing.assert_close(noisy["rss"], clean_test[0][0]["rss"])  # rss is an image: stays clean
    torch.testing.assert_close(noisy["phase"], clean_test.with_noise(5.0, seed=0)[0][0]["phase"])
    assert not torch.equal(noisy["phase"], clean_test.with_noise(5.0, seed=1)[0][0]["phase"])


def test_test_time_noise_has_one_sigma_per_volume_whatever_each_slices_signal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Three slices whose k-space power differs 100x: the noise added to each has the same std, the one the
    # volume's mean power gives at the SNR (a scanner's thermal noise), not one that follows each slice.
    from i2m2.data import fastmri_volume
    from i2m2.data.kspace import kspace_noise_std

    rng = np.random.default_rng(0)
    base = rng.normal(size=(3, 64, 48)) + 1j * rng.normal(size=(3, 64, 48))
    kspace = (base * np.array([0.1, 1.0, 10.0])[:, None, None]).astype(np.complex64)
    root = _volumes_folder(tmp_path, {f"file{i}": kspace for i in range(3)})
    added: list[float] = []
    real_add = fastmri_volume.add_kspace_noise

    def spy(k: np.ndarray, snr_db: float, rng: np.random.Generator, power: float | None = None) -> np.ndarray:
        noisy = real_add(k, snr_db, rng, power)
        added.append(float((noisy.astype(np.complex128) - k).real.std()))
        return noisy

    monkeypatch.setattr(fastmri_volume, "add_kspace_noise", spy)
    _, _, test = load_fastmri(root, seed=0, crop=16, max_width=48, snr_db=10.0, modalities=("phase",))
    for i in range(3):
        test[i]
    volume_sigma = kspace_noise_std(kspace, 10.0)  # over the whole volume
    assert fastmri_volume.volume_kspace_power(test.volumes[0].path) == pytest.approx(
        np.mean(np.abs(kspace.astype(np.complex128)) ** 2), rel=1e-6
    )
    np.testing.assert_allclose(added, volume_sigma, rtol=0.03)  # 3072 samples per slice: ~1.3% error
    per_slice = [kspace_noise_std(k, 10.0) for k in kspace]
    assert per_slice[2] / per_slice[0] == pytest.approx(100, rel=0.05)  # what a per-slice sigma would give


def _ks_statistic(a: np.ndarray, b: np.ndarray) -> float:
    """The two-sample Kolmogorov-Smirnov distance: the largest gap between the empirical CDFs."""
    grid = np.sort(np.concatenate([a, b]))
    cdf_a = np.searchsorted(np.sort(a), grid, side="right") / len(a)
    cdf_b = np.searchsorted(np.sort(b), grid, side="right") / len(b)
    return float(np.abs(cdf_a - cdf_b).max())


def _coordinates(points: np.ndarray) -> dict[str, np.ndarray]:
    return {
        "y": points[:, 0],
        "x": points[:, 1],
        "radius": np.hypot(points[:, 0], points[:, 1]),
        "angle": np.arctan2(points[:, 0], points[:, 1]),
    }


def test_the_acl_phase_dip_sits_alike_with_and_without_the_finding() -> None:
    # With the finding the dip is at the ligament; without it, at the second point _acl_geometry draws. Each
    # modality alone sees one point, so the two must be distributed identically: a two-sample KS test over
    # 20,000 + 20,000 volumes (independent halves, fixed seed) finds no difference at the 0.1% level
    # (critical distance 1.95 * sqrt(2 / 20,000) = 0.0195) in y, x, radius or angle. The old design (the
    # dip drawn anywhere in the disc, rejected within 0.15 * size of the ligament; radius KS distance about
    # 0.05) is told apart by the same test.
    from i2m2.data.fastmri_phantom import ACL_SEPARATION, _acl_geometry, _place

    size, n = 64, 20_000
    rng = np.random.default_rng(0)
    draws = [_acl_geometry(rng, size) for _ in range(2 * n)]
    with_acl = np.array([ligament for ligament, _ in draws[:n]])
    without = np.array([away for _, away in draws[n:]])
    critical = 1.95 * np.sqrt(2 / n)
    for name, a in _coordinates(with_acl).items():
        distance = _ks_statistic(a, _coordinates(without)[name])
        assert distance < critical, f"dip {name}: KS distance {distance:.3f} >= {critical:.3f}"
    pairs = np.array([np.subtract(*pair) for pair in draws])
    assert np.hypot(pairs[:, 0], pairs[:, 1]).min() >= ACL_SEPARATION * size - 1e-9  # off means off

    def old_away(ligament: np.ndarray) -> np.ndarray:
        while True:
            point = _place(rng, size)
            if np.linalg.norm(point - ligament) > size * 0.15:
                return point

    old_with = np.array([_place(rng, size) for _ in range(n)])
    old_without = np.array([old_away(_place(rng, size)) for _ in range(n)])
    old = _ks_statistic(_coordinates(old_with)["radius"], _coordinates(old_without)["radius"])
    assert old > 2 * critical, f"the test should see the old design's bias (KS {old:.3f})"


# --- bad input ---------------------------------------------------------------------------------------------


def _volumes_folder(root: Path, kspace: dict[str, np.ndarray], no_rss: tuple[str, ...] = ()) -> Path:
    """Minimal fastMRI folders: the given k-space per volume, a 16x16 rss, an empty knee.csv."""
    for name, k in kspace.items():
        with h5py.File(root / f"{name}.h5", "w") as f:
            f.create_dataset("kspace" if k.ndim == 3 else "other", data=k)
            if name not in no_rss:
                f.create_dataset("reconstruction_rss", data=np.ones((len(k), 16, 16), np.float32))
    (root / "knee_file_list.csv").write_text("\n".join(kspace) + "\n")
    (root / "knee.csv").write_text("file,slice,study_level,x,y,width,height,label\n")
    return root


GOOD = np.ones((2, 16, 12), np.complex64)


@pytest.mark.parametrize(
    ("bad", "match", "options"),
    [
        (np.ones(5, np.complex64), "no 'kspace' dataset", {}),
        (np.ones((2, 16, 12), np.float32), "'kspace' must be complex", {}),
        (np.ones((2, 16, 20), np.complex64), "k-space width 20 exceeds the maximum 16", {}),
        (
            np.ones((2, 16, 10), np.complex64),
            r"crop 11 is larger than the image: the k-space is 16x10 \(readout x phase encoding\), "
            "an image of 16x10; the crop can be at most 10",
            {"crop": 11, "zero_fill": False},
        ),
        (
            np.ones((2, 12, 10), np.complex64),
            r"crop 14 is larger than the image: the k-space is 12x10 .*, an image of 12x16 once its width is "
            "zero-filled to --max-width 16; the crop can be at most 12",
            {"crop": 14},
        ),
    ],
)
def test_bad_volumes_raise_one_data_error_naming_the_file(
    tmp_path: Path, bad: np.ndarray, match: str, options: dict[str, object]
) -> None:
    root = _volumes_folder(tmp_path, {"file1": GOOD, "file2": bad, "file3": GOOD})
    kwargs = {"crop": 8, "max_width": 16, **options}
    with pytest.raises(DataError, match=f"{root / 'file2.h5'}: {match}"):
        load_fastmri(root, seed=0, **kwargs)  # type: ignore[arg-type]


def test_a_volume_without_rss_is_a_data_error_unless_rss_is_not_wanted(tmp_path: Path) -> None:
    root = _volumes_folder(tmp_path, {"file1": GOOD, "file2": GOOD, "file3": GOOD}, no_rss=("file2",))
    with pytest.raises(DataError, match=f"{root / 'file2.h5'}: no 'reconstruction_rss' dataset"):
        load_fastmri(root, seed=0, crop=8, max_width=16)
    train, _, _ = load_fastmri(root, seed=0, crop=8, max_width=16, modalities=("magnitude", "phase"))
    assert set(train[0][0]) == {"magnitude", "phase"}


def test_empty_split_and_missing_files_are_data_errors(tmp_path: Path) -> None:
    root = _volumes_folder(tmp_path, {"file1": GOOD, "file2": GOOD})
    with pytest.raises(DataError, match=f"{root}: 2 usable volume\\(s\\); train, val and test need one each"):
        load_fastmri(root, seed=0, crop=8, max_width=16)
    (root / "knee_file_list.csv").write_text("file7\n")
    with pytest.raises(DataError, match=r"knee_file_list\.csv: none of the 1 listed volumes"):
        load_fastmri(root, seed=0, crop=8, max_width=16)
    (root / "knee.csv").unlink()
    (root / "knee_file_list.csv").unlink()
    with pytest.raises(DataError, match=r"no knee_file_list\.csv"):
        load_fastmri(root, seed=0, crop=8, max_width=16)
    (root / "file1.h5").write_bytes(b"not hdf5")
    (root / "knee_file_list.csv").write_text("file1\n")
    with pytest.raises(DataError, match=f"{root / 'file1.h5'}: cannot read as HDF5"):
        load_fastmri(root, seed=0, crop=8, max_width=16)


def test_phantom_puts_both_classes_of_every_finding_in_every_split(tmp_path: Path) -> None:
    root = write_phantom_dataset(tmp_path, volumes=20, slices=3, size=SIZE, seed=2)
    for part in load(root, modalities=("magnitude",)):
        positives = part.labels.sum(0)
        assert bool((positives > 0).all()) and bool((positives < len(part)).all()), positives


def test_the_phantom_header_reads_with_fastmris_own_queries(tmp_path):
    """fastMRI's SliceDataset reads the header with namespaced XPath queries (its ``et_query``): the
    matrix sizes and the phase-encoding limits must all be there, consistent with the k-space."""
    import xml.etree.ElementTree as ElementTree

    import h5py

    from i2m2.data.fastmri_phantom import ISMRMRD_NAMESPACE, write_phantom_dataset

    write_phantom_dataset(tmp_path / "knee", volumes=4, slices=2, size=16, seed=0)
    path = next((tmp_path / "knee").rglob("*.h5"))
    with h5py.File(path, "r") as f:
        root = ElementTree.fromstring(f["ismrmrd_header"][()])
        kspace_shape = f["kspace"].shape

    def query(*names: str) -> int:  # as fastmri.data.mri_data.et_query
        found = root.find(
            "." + "".join(f"//ismrmrd_namespace:{n}" for n in names), {"ismrmrd_namespace": ISMRMRD_NAMESPACE}
        )
        assert found is not None and found.text is not None, names
        return int(found.text)

    enc = ("encoding", "encodedSpace", "matrixSize")
    assert (query(*enc, "x"), query(*enc, "y"), query(*enc, "z")) == (kspace_shape[1], kspace_shape[2], 1)
    rec = ("encoding", "reconSpace", "matrixSize")
    assert (query(*rec, "x"), query(*rec, "y")) == (16, 16)
    lims = ("encoding", "encodingLimits", "kspace_encoding_step_1")
    center, maximum = query(*lims, "center"), query(*lims, "maximum") + 1
    padding_left = kspace_shape[2] // 2 - center
    assert padding_left == 0 and padding_left + maximum == kspace_shape[2]  # fully sampled, no padding
