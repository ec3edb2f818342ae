"""Simulated knee volumes in the exact fastMRI single-coil + fastMRI+ layout, for tests and CPU demos.

``write_phantom_dataset(out, volumes=80, slices=10, size=64, seed=0)`` writes::

    out/README.txt                      says the data are simulated
    out/Annotations/knee.csv            fastMRI+ columns file,slice,study_level,x,y,width,height,label
    out/Annotations/knee_file_list.csv  no header, one volume name per line
    out/singlecoil_train/file1000001.h5 kspace (slices, 2*size, W) complex64, W = size + 4..12,
                                        reconstruction_rss / _esc (slices, size, size) float32,
                                        ismrmrd_header, attrs (acquisition, max, norm, patient_id,
                                        simulated = "i2m2 phantom ...")

Load it with ``load_fastmri(out, seed, crop=size, max_width=phantom_max_width(size))``.

The MR physics simulated: a complex image ``m * exp(i phi)`` of anatomy-like ellipses with tissue
magnitudes ``m`` and a smooth background phase ``phi`` (field inhomogeneity); centred FFT to k-space on a
grid 2x oversampled along the readout; complex Gaussian acquisition noise in k-space; an RSS-like image
with 3x less noise (the multi-coil combination). Findings are designed so that each modality matters
differently. A finding sits at one place per volume and spans a run of 1/3 to 2/3 of its slices, cyclic
over the slice index so that no slice position (visible through the anatomy's size) predicts it. Which
volumes have which finding is drawn per part of the default volume split (``split_seed`` 0), so that
validation and test hold positives and negatives of every finding:

* ``Meniscus Tear`` (meniscus): a dark band in the magnitude; the phase is unchanged.
* ``Cartilage - Partial Thickness loss/defect`` (cartilage): a local susceptibility-like phase bump
  of +2 rad (Gaussian, sigma 4.5 px); the magnitude is unchanged.
* ``Ligament - ACL Low Grade sprain`` (ACL): *every* slice has a bright ligament line in the magnitude
  and a -1.5 rad phase dip; the finding is present iff the dip lies on the ligament. The ligament's and
  the dip's positions are each distributed identically with and without the finding (:func:`_acl_geometry`),
  so only the two modalities together reveal it.
* ``Joint Effusion `` (other, trailing space as in fastMRI+): a bright fluid pocket in the magnitude.

Physics side effects remain, as in real scans: the phase is noisier where the magnitude is dark (pure
noise outside the knee), so the phase image carries a faint trace of the magnitude's structure, the
bright ligament included (its phase noise is half the tissue's); and zero-filling the k-space width
interpolates the complex image, so a steep phase change leaves a faint trace in the magnitude.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from i2m2.atomic import atomic_write_text
from i2m2.data.fastmri import split_volumes
from i2m2.data.kspace import center_crop, centered_fft2, centered_ifft2

LABELS = {
    "meniscus": "Meniscus Tear",
    "cartilage": "Cartilage - Partial Thickness loss/defect",
    "acl": "Ligament - ACL Low Grade sprain",
    "other": "Joint Effusion ",
}
PREVALENCE = {"meniscus": 0.5, "cartilage": 0.5, "acl": 0.5, "other": 0.4}  # per volume
SIMULATED = "i2m2 phantom: simulated data, not patient scans"
PHANTOM_SIZE = 64  # the default image side; 'i2m2 run fastmri-knee --preset cpu' crops to it
PHANTOM_VOLUMES = 80
CARTILAGE_RAD, CARTILAGE_SIGMA = 2.0, 4.5  # the phase-only finding: peak shift (rad), Gaussian width (px)


def phantom_max_width(size: int) -> int:
    """The widest phantom k-space for ``size``: pass it as ``max_width`` to the loader."""
    return size + 16


def phantom_run_command(data_dir: Path | str, size: int = PHANTOM_SIZE) -> str:
    """The one command that trains on a phantom of image side ``size``: the cpu preset, which defaults the
    crop to 64 and the zero-fill width to ``phantom_max_width(crop)``; another size adds its ``--crop``."""
    crop = "" if size == PHANTOM_SIZE else f" --crop {size}"
    return f"i2m2 run fastmri-knee --data-dir {data_dir} --preset cpu{crop}"


def phantom_size(data_dir: Path | str) -> int | None:
    """The image side of the phantom under ``data_dir`` (its RSS images' side), None if none is found."""
    for path in sorted(Path(data_dir).rglob("*.h5"))[:1]:
        try:
            with h5py.File(path, "r") as f:
                if f.attrs.get("simulated") == SIMULATED and "reconstruction_rss" in f:
                    return int(f["reconstruction_rss"].shape[-1])
        except OSError:
            return None
    return None


@dataclass
class _Finding:
    first: int  # slices first, first + 1, ..., first + length - 1 (mod the slice count) show it
    length: int
    y: float  # centre, pixels from the image centre
    x: float

    def shows(self, s: int, slices: int) -> bool:
        return (s - self.first) % slices < self.length


def write_phantom_dataset(
    out: Path,
    volumes: int = PHANTOM_VOLUMES,
    slices: int = 10,
    size: int = PHANTOM_SIZE,
    seed: int = 0,
    noise_std: float = 0.03,
) -> Path:
    """Write ``volumes`` simulated knees of ``slices`` slices of ``size x size`` under ``out`` (returned).

    Args:
        noise_std: acquisition noise std per real/imaginary channel, relative to tissue magnitude ~0.6
            (the orthonormal FFT gives the same std per image pixel).

    Deterministic for a seed: the same arguments write the same arrays and CSVs.
    """
    if volumes < 1 or slices < 1 or size < 16:
        raise ValueError(f"need volumes >= 1, slices >= 1, size >= 16; got {volumes}, {slices}, {size}")
    out = Path(out)
    (out / "singlecoil_train").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    rows = ["file,slice,study_level,x,y,width,height,label"]
    names = [f"file{1000001 + v}" for v in range(volumes)]
    present = _stratified_presence(names, rng)
    for name in names:
        path = out / "singlecoil_train" / f"{name}.h5"
        rows += _write_volume(path, name, slices, size, noise_std, present[name], rng)
    atomic_write_text(out / "Annotations" / "knee.csv", "\n".join(rows) + "\n")
    atomic_write_text(out / "Annotations" / "knee_file_list.csv", "\n".join(names) + "\n")
    atomic_write_text(out / "README.txt", _readme(volumes, slices, size, seed))
    return out


def _stratified_presence(names: list[str], rng: np.random.Generator) -> dict[str, set[str]]:
    """Which findings each volume has: in each part of the default volume split (``split_seed`` 0),
    ``round(prevalence * n)`` of its ``n`` volumes, at least one and at most ``n - 1`` where ``n >= 2``,
    so that validation and test hold positives and negatives of every finding."""
    present: dict[str, set[str]] = {name: set() for name in names}
    for part in split_volumes(names, 0):
        for key, p in PREVALENCE.items():
            n = len(part)
            k = min(max(round(p * n), 1), n - 1) if n >= 2 else int(rng.random() < p)
            for name in rng.permutation(part)[:k]:
                present[str(name)].add(key)
    return present


def _write_volume(
    path: Path,
    name: str,
    slices: int,
    size: int,
    noise_std: float,
    present: set[str],
    rng: np.random.Generator,
) -> list[str]:
    width = size + 4 * int(rng.integers(1, 4))
    yy, xx = np.mgrid[-size:size, -(width // 2) : width - width // 2].astype(np.float64)
    findings = {k: _draw_finding(rng, slices, size, k in present) for k in PREVALENCE}
    ligament, dip_away = _acl_geometry(rng, size)  # dip_away: the phase dip in slices without ACL
    anatomy = rng.uniform(0.9, 1.1, size=4)
    phase_coeffs = rng.uniform([-0.3, -0.6, -0.6, -0.4], [0.3, 0.6, 0.6, 0.4])
    kspace = np.empty((slices, 2 * size, width), dtype=np.complex64)
    rss = np.empty((slices, size, size), dtype=np.float32)
    esc = np.empty((slices, size, size), dtype=np.float32)
    rows = []
    for s in range(slices):
        shown = {k: f for k, f in findings.items() if f is not None and f.shows(s, slices)}
        scale = size * (0.85 + 0.15 * np.sin(np.pi * (s + 0.5) / slices))
        magnitude = _anatomy(yy, xx, scale, anatomy)
        phase = _background_phase(yy, xx, size, phase_coeffs, drift=0.05 * s)
        jitter = rng.normal(0, 0.5, size=2)
        magnitude = _line(magnitude, yy, xx, ligament + jitter, size * 0.16, value=1.2)
        dip = ligament if "acl" in shown else dip_away
        phase = phase - 1.5 * _blob(yy, xx, dip + jitter, sigma=3.0)
        magnitude, phase = _lesions(magnitude, phase, yy, xx, size, shown)
        clean = magnitude * np.exp(1j * phase)
        noise = rng.standard_normal((2, *clean.shape))
        kspace[s] = centered_fft2(clean) + noise_std * (noise[0] + 1j * noise[1])
        rss[s] = np.abs(center_crop(clean + noise_std / 3 * (noise[0] + 1j * noise[1]), size))
        esc[s] = np.abs(center_crop(centered_ifft2(kspace[s]), size))
        rows += _csv_rows(name, s, size, shown, ligament)
    if rng.random() < 0.3:
        rows.append(f"{name},,Yes,,,,,Patellar Retinaculum - High grade sprain")
    _write_h5(path, name, kspace, rss, esc)
    return rows


def _lesions(
    magnitude: np.ndarray,
    phase: np.ndarray,
    yy: np.ndarray,
    xx: np.ndarray,
    size: int,
    shown: dict[str, _Finding],
) -> tuple[np.ndarray, np.ndarray]:
    """One slice's magnitude and phase with the findings it shows other than the ACL (which lives in the
    ligament and the phase dip): a dark meniscus band, a cartilage phase bump, a bright effusion pocket."""
    if "meniscus" in shown:
        f = shown["meniscus"]
        band = (np.abs(yy - f.y) < 2.0) & (np.abs(xx - f.x) < size * 0.16)
        magnitude = np.where(band, 0.3 * magnitude, magnitude)
    if "cartilage" in shown:
        f = shown["cartilage"]
        phase = phase + CARTILAGE_RAD * _blob(yy, xx, np.array([f.y, f.x]), sigma=CARTILAGE_SIGMA)
    if "other" in shown:
        f = shown["other"]
        pocket = ((yy - f.y) / (size * 0.08)) ** 2 + ((xx - f.x) / (size * 0.12)) ** 2 < 1
        magnitude = np.where(pocket, 1.4, magnitude)
    return magnitude, phase


def _write_h5(path: Path, name: str, kspace: np.ndarray, rss: np.ndarray, esc: np.ndarray) -> None:
    """One volume in fastMRI's single-coil HDF5 layout: k-space (slices, 2*size, width), both
    reconstructions (slices, size, size), the ISMRMRD header and fastMRI's attributes."""
    _, height, width = kspace.shape
    with h5py.File(path, "w") as f:
        f.create_dataset("kspace", data=kspace)
        f.create_dataset("reconstruction_rss", data=rss)
        f.create_dataset("reconstruction_esc", data=esc)
        f.create_dataset("ismrmrd_header", data=_header(height, width, rss.shape[-1]))
        f.attrs.update(
            acquisition="CORPD_FBK",
            max=float(rss.max()),
            norm=float(np.linalg.norm(rss)),
            patient_id=hashlib.sha256(name.encode()).hexdigest(),
            simulated=SIMULATED,
        )


def _draw_finding(rng: np.random.Generator, slices: int, size: int, present: bool) -> _Finding | None:
    length = max(1, int(rng.integers(max(1, slices // 3), max(2, 2 * slices // 3 + 1))))
    first = int(rng.integers(0, slices))  # a cyclic run: every slice index is equally likely to show it
    y, x = _place(rng, size)
    return _Finding(first, length, y, x) if present else None


def _place(rng: np.random.Generator, size: int) -> np.ndarray:
    """A point inside the soft tissue, away from its edge."""
    radius, angle = size * 0.28 * np.sqrt(rng.random()), rng.uniform(0, 2 * np.pi)
    return np.array([radius * np.sin(angle), radius * np.cos(angle)])


# The ligament and the phase dip lie on an annulus around the image centre (uniform over its area); see
# _acl_geometry. The inner radius and the least separation keep a dip that is not on the ligament clear
# of it (the line's half-length is 0.16 * size, the dip's width 3 px).
ACL_RADII = (0.12, 0.28)  # fraction of the image side
ACL_SEPARATION = 0.22  # least distance between ligament centre and a dip off it, fraction of the side


def _acl_geometry(rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray]:
    """The ligament's centre and where the phase dip sits in slices without the ACL finding.

    Each alone must not tell whether a slice shows the finding: in a slice with it the dip is at the
    ligament, so the dip off the ligament must have the ligament's own distribution. Both share a radius
    (uniform over the annulus's area) and their angles differ by ``delta``, uniform on an arc that keeps
    them ``ACL_SEPARATION`` apart: for a uniform ligament angle, ``angle + delta`` is uniform too, so the
    two points have the same distribution, and the dip's position is distributed identically with and
    without the finding. (Drawing the dip anywhere and rejecting it near the ligament, as before, pushed
    it towards the rim: a dip near the centre meant ACL, and phase alone reached about 0.63 AUROC.)
    """
    inner, outer = ACL_RADII
    radius = size * np.sqrt(rng.uniform(inner**2, outer**2))
    least = 2 * np.arcsin(min(1.0, ACL_SEPARATION / (2 * inner)))  # chord >= separation at every radius
    angle = rng.uniform(0, 2 * np.pi)
    away = angle + rng.uniform(least, 2 * np.pi - least)
    return _polar(radius, angle), _polar(radius, away)


def _polar(radius: float, angle: float) -> np.ndarray:
    return np.array([radius * np.sin(angle), radius * np.cos(angle)])


def _anatomy(yy: np.ndarray, xx: np.ndarray, scale: float, jitter: np.ndarray) -> np.ndarray:
    """Soft tissue (0.6) holding femur and tibia marrow (0.9) split by a darker joint space."""

    def ellipse(cy: float, cx: float, ry: float, rx: float) -> np.ndarray:
        return ((yy - cy * scale) / (ry * scale)) ** 2 + ((xx - cx * scale) / (rx * scale)) ** 2 < 1

    magnitude = np.where(ellipse(0, 0, 0.46 * jitter[0], 0.40 * jitter[1]), 0.6, 0.0)
    magnitude = np.where(ellipse(-0.24, 0, 0.18 * jitter[2], 0.24), 0.9, magnitude)
    return np.where(ellipse(0.24, 0, 0.18 * jitter[3], 0.24), 0.9, magnitude)


def _background_phase(yy: np.ndarray, xx: np.ndarray, size: int, c: np.ndarray, drift: float) -> np.ndarray:
    """A smooth low-order field map: offset, gradients and a quadratic term, below pi in the crop."""
    y, x = yy / (size / 2), xx / (size / 2)
    return c[0] + drift + c[1] * x + c[2] * y + c[3] * (x**2 + y**2)


def _blob(yy: np.ndarray, xx: np.ndarray, centre: np.ndarray, sigma: float) -> np.ndarray:
    return np.exp(-((yy - centre[0]) ** 2 + (xx - centre[1]) ** 2) / (2 * sigma**2))


def _line(
    magnitude: np.ndarray, yy: np.ndarray, xx: np.ndarray, centre: np.ndarray, half: float, value: float
) -> np.ndarray:
    """A diagonal bright line (the ligament) of half-length ``half`` and about 2 pixels thick."""
    along = ((yy - centre[0]) + (xx - centre[1])) / np.sqrt(2)
    across = ((yy - centre[0]) - (xx - centre[1])) / np.sqrt(2)
    return np.where((np.abs(along) < half) & (np.abs(across) < 1.0), value, magnitude)


def _csv_rows(name: str, s: int, size: int, shown: dict[str, _Finding], ligament: np.ndarray) -> list[str]:
    """fastMRI+ boxes in crop pixel coordinates (x, y top-left), one row per finding shown."""
    rows = []
    for key, f in shown.items():
        cy, cx = (ligament if key == "acl" else np.array([f.y, f.x])) + size / 2
        half = size * 0.16
        rows.append(
            f"{name},{s},No,{int(cx - half)},{int(cy - half)},{int(2 * half)},{int(2 * half)},{LABELS[key]}"
        )
    return rows


ISMRMRD_NAMESPACE = "http://www.ismrm.org/ISMRMRD"


def _header(height: int, width: int, size: int) -> str:
    """The ISMRMRD header fastMRI's own ``SliceDataset`` reads: matrix sizes of the encoded (k-space) and
    reconstructed spaces, and the phase-encoding limits (fully sampled: centre ``width // 2``, lines
    ``0..width - 1``), in the ISMRMRD namespace its XPath queries use."""
    return (
        f'<?xml version="1.0" encoding="utf-8"?>\n<ismrmrdHeader xmlns="{ISMRMRD_NAMESPACE}"><encoding>'
        f"<encodedSpace><matrixSize><x>{height}</x><y>{width}</y><z>1</z></matrixSize></encodedSpace>"
        f"<reconSpace><matrixSize><x>{size}</x><y>{size}</y><z>1</z></matrixSize></reconSpace>"
        "<encodingLimits><kspace_encoding_step_1>"
        f"<minimum>0</minimum><maximum>{width - 1}</maximum><center>{width // 2}</center>"
        "</kspace_encoding_step_1></encodingLimits>"
        f"</encoding><!-- {SIMULATED} --></ismrmrdHeader>"
    )


def _readme(volumes: int, slices: int, size: int, seed: int) -> str:
    return (
        "SIMULATED DATA - NOT PATIENT SCANS.\n\n"
        f"{volumes} knee phantoms of {slices} slices ({size}x{size} after cropping), written by "
        f"i2m2.data.fastmri_phantom.write_phantom_dataset(seed={seed}) in the fastMRI single-coil layout,\n"
        "with fastMRI+-style annotations under Annotations/. Findings: 'Meniscus Tear' (magnitude only),\n"
        "'Cartilage - Partial Thickness loss/defect' (phase only), 'Ligament - ACL Low Grade sprain' (only\n"
        "magnitude and phase together), 'Joint Effusion ' (magnitude). Every HDF5 file carries\n"
        f"attrs['simulated'] = '{SIMULATED}'.\n"
    )
