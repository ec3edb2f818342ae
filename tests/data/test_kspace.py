"""k-space preprocessing: centred inverse FFT, zero filling, centre crop and noise at a requested SNR."""

from __future__ import annotations

import numpy as np
import pytest

from i2m2.data.kspace import (
    add_kspace_noise,
    center_crop,
    centered_ifft2,
    kspace_noise_std,
    slice_modalities,
    zero_fill_width,
)


def test_centered_ifft2_matches_the_dft_sum_written_out() -> None:
    # image[n, m] = 1/sqrt(HW) sum_{k,l} K[k, l] exp(2 pi i ((k - H//2)(n - H//2)/H + (l - W//2)(m - W//2)/W))
    rng = np.random.default_rng(0)
    h, w = 4, 6
    k = rng.normal(size=(h, w)) + 1j * rng.normal(size=(h, w))
    kk, ll = np.meshgrid(np.arange(h) - h // 2, np.arange(w) - w // 2, indexing="ij")
    expected = np.empty((h, w), complex)
    for n in range(h):
        for m in range(w):
            phase = 2j * np.pi * (kk * (n - h // 2) / h + ll * (m - w // 2) / w)
            expected[n, m] = (k * np.exp(phase)).sum() / np.sqrt(h * w)
    np.testing.assert_allclose(centered_ifft2(k), expected, atol=1e-12)


def test_one_k_space_sample_gives_a_plane_wave_whose_magnitude_and_phase_we_know() -> None:
    # One sample c one step right of the centre of an 8 x 6 k-space: the image is c/sqrt(48) e^{2 pi i x/6},
    # x the column from the centre; zero-filled to 12 columns it becomes c/sqrt(96) e^{2 pi i x/12}.
    c = np.complex64(2.0 * np.exp(0.5j))
    k = np.zeros((8, 6), np.complex64)
    k[4, 4] = c
    magnitude, phase = slice_modalities(k, crop=4)
    np.testing.assert_allclose(magnitude, np.ones((4, 4)), rtol=1e-5)  # constant, scaled by its 99th pct.
    columns = np.arange(4) - 2
    np.testing.assert_allclose(phase, np.tile(0.5 + 2 * np.pi * columns / 6, (4, 1)), atol=1e-5)
    filled = zero_fill_width(k, 12)
    assert filled[4, 7] == c and np.count_nonzero(filled) == 1  # DC stays at the centre (12 // 2 = 6)
    image = center_crop(centered_ifft2(filled), 4)
    np.testing.assert_allclose(np.abs(image), np.full((4, 4), 2 / np.sqrt(96)), rtol=1e-5)
    np.testing.assert_allclose(np.angle(image), np.tile(0.5 + 2 * np.pi * columns / 12, (4, 1)), atol=1e-5)


def test_center_crop_keeps_the_fft_centre_and_refuses_a_larger_crop() -> None:
    image = np.arange(7 * 8).reshape(7, 8)
    np.testing.assert_array_equal(center_crop(image, 3), image[2:5, 3:6])  # centre (3, 4) stays in the middle
    with pytest.raises(ValueError, match=r"crop 9x9 is larger than the image 7x8"):
        center_crop(image, 9)


@pytest.mark.parametrize("snr_db", [0.0, 10.0, 25.0])
def test_noise_has_the_requested_snr_and_is_seeded(snr_db: float) -> None:
    rng = np.random.default_rng(0)
    k = (rng.normal(size=(128, 96)) + 1j * rng.normal(size=(128, 96))).astype(np.complex64) * 5
    noisy = add_kspace_noise(k, snr_db, np.random.default_rng(3))
    noise = noisy.astype(np.complex128) - k
    measured = 10 * np.log10(np.mean(np.abs(k) ** 2) / np.mean(np.abs(noise) ** 2))
    assert abs(measured - snr_db) < 0.1
    assert abs(noise.real.std() - kspace_noise_std(k, snr_db)) < 0.02 * kspace_noise_std(k, snr_db)
    np.testing.assert_array_equal(noisy, add_kspace_noise(k, snr_db, np.random.default_rng(3)))
    assert noisy.dtype == np.complex64
