"""From one slice of raw k-space to the two modalities of the paper: image magnitude and image phase.

The steps, and why:

1. Test-time noise (optional, :func:`add_kspace_noise`): complex Gaussian noise added to the acquired
   k-space, the physics of a low-field scanner (Rician noise in the magnitude; paper Appendix C). Its
   level is set once per volume, from the volume's mean k-space power, as a scanner's thermal noise is.
2. Zero-fill the width (optional): the fastMRI k-space width W varies between volumes (the authors keep
   W <= 400 and zero-pad the k-space to 400), so every slice gives an image on the same grid.
3. Centered orthonormal 2-D inverse FFT (:func:`centered_ifft2`): ``fftshift(ifft2(ifftshift(k)))``
   puts the DC sample at the centre of both k-space and image; ``norm="ortho"`` keeps the energy, so a
   noise level set in k-space is the same per pixel in the image.
4. Centre crop to ``crop x crop`` (320 in the paper): the fastMRI readout axis is 2x oversampled, the
   anatomy sits in the middle.
5. Magnitude, divided by its 99th percentile over the cropped slice (:func:`scale_magnitude`): scanner
   gain differs between volumes by orders of magnitude, and a high percentile (unlike the maximum) is
   not set by one bright artefact and barely moves when test-time noise is added. Phase in radians,
   in ``[-pi, pi]``, unscaled.
"""

from __future__ import annotations

import numpy as np

MAGNITUDE_QUANTILE = 0.99
_EPS = 1e-12


def centered_ifft2(kspace: np.ndarray) -> np.ndarray:
    """Image of a centred k-space over its last two axes: ``fftshift(ifft2(ifftshift(k), norm="ortho"))``."""
    axes = (-2, -1)
    return np.fft.fftshift(np.fft.ifft2(np.fft.ifftshift(kspace, axes=axes), norm="ortho"), axes=axes)


def centered_fft2(image: np.ndarray) -> np.ndarray:
    """The inverse of :func:`centered_ifft2` (image -> centred k-space), used to simulate acquisitions."""
    axes = (-2, -1)
    return np.fft.fftshift(np.fft.fft2(np.fft.ifftshift(image, axes=axes), norm="ortho"), axes=axes)


def zero_fill_width(kspace: np.ndarray, width: int) -> np.ndarray:
    """Pad the last axis of a centred k-space with zeros, evenly on both sides, to ``width`` samples.

    Padding keeps the centre (DC) sample at index ``width // 2``, as ``fftshift`` expects.
    """
    have = kspace.shape[-1]
    if have > width:
        raise ValueError(f"k-space width {have} exceeds the zero-fill width {width}")
    left = width // 2 - have // 2
    pad = [(0, 0)] * (kspace.ndim - 1) + [(left, width - have - left)]
    return np.pad(kspace, pad)


def center_crop(image: np.ndarray, size: int) -> np.ndarray:
    """The central ``size x size`` window of the last two axes (the same centre as ``fftshift``)."""
    height, width = image.shape[-2:]
    if size > height or size > width:
        raise ValueError(f"crop {size}x{size} is larger than the image {height}x{width}")
    top, left = height // 2 - size // 2, width // 2 - size // 2
    return image[..., top : top + size, left : left + size]


def scale_magnitude(magnitude: np.ndarray, quantile: float = MAGNITUDE_QUANTILE) -> np.ndarray:
    """Divide a slice by its ``quantile`` (a per-slice gain normalization, see the module docstring)."""
    scale = float(np.quantile(magnitude, quantile))
    return (magnitude / max(scale, _EPS)).astype(np.float32)


def kspace_noise_std(kspace: np.ndarray, snr_db: float, power: float | None = None) -> float:
    """Per-channel noise std giving ``snr_db`` over a k-space of mean power ``power``.

    SNR is defined over k-space as signal power / noise power, in decibels:
    ``SNR_dB = 10 log10(mean |k|^2 / E|n|^2)``. Complex noise with std ``sigma`` in the real and in the
    imaginary channel has ``E|n|^2 = 2 sigma^2``, so ``sigma = sqrt(mean |k|^2 / (2 * 10^(SNR_dB / 10)))``.
    ``power`` is ``mean |k|^2``; by default that of ``kspace`` itself. A scanner's thermal noise does not
    follow each slice's signal, so the loader passes the whole volume's (:func:`kspace_power`): one sigma
    per volume.
    """
    power = kspace_power(kspace) if power is None else power
    return float(np.sqrt(power / (2.0 * 10.0 ** (snr_db / 10.0))))


def kspace_power(kspace: np.ndarray) -> float:
    """``mean |k|^2`` over every sample of ``kspace`` (a slice, or a whole volume)."""
    return float(np.mean(np.abs(kspace) ** 2))


def add_kspace_noise(
    kspace: np.ndarray, snr_db: float, rng: np.random.Generator, power: float | None = None
) -> np.ndarray:
    """``kspace`` plus complex Gaussian noise at ``snr_db`` relative to ``power`` (default: that of
    ``kspace``; see :func:`kspace_noise_std`), drawn from ``rng``."""
    sigma = kspace_noise_std(kspace, snr_db, power)
    noise = rng.standard_normal(kspace.shape) + 1j * rng.standard_normal(kspace.shape)
    return (kspace + sigma * noise).astype(kspace.dtype)


def slice_modalities(
    kspace: np.ndarray, crop: int, zero_fill: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """``(magnitude, phase)`` float32 ``(crop, crop)`` images of one k-space slice ``(H, W)``.

    Args:
        kspace: complex, centred k-space of one slice.
        crop: side of the centre crop.
        zero_fill: if given, the k-space width is zero-padded to this many samples first.
    """
    if zero_fill is not None:
        kspace = zero_fill_width(kspace, zero_fill)
    image = center_crop(centered_ifft2(kspace), crop)
    magnitude = scale_magnitude(np.abs(image))
    phase = np.angle(image).astype(np.float32)
    return magnitude, phase
