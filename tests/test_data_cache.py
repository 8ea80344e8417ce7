"""The decoded-image cache: same pixels as the readers, never stale, never half-written."""

from __future__ import annotations

import json
import os

import numpy as np
import pandas as pd
import pytest

from shiftbench.data import cache, load_dataset, read_image, read_mask, write_image
from shiftbench.errors import ShiftbenchError


@pytest.fixture
def own_cache(tmp_path, monkeypatch):
    folder = tmp_path / "cache"
    monkeypatch.setenv("SHIFTBENCH_CACHE", str(folder))
    return folder


@pytest.fixture
def files(tmp_path):
    rng = np.random.default_rng(0)
    paths = []
    for i in range(5):
        p = tmp_path / "imgs" / f"{i}.png"
        write_image(p, rng.integers(0, 256, (40, 30, 3), dtype=np.uint8))
        paths.append(str(p))
    mask = tmp_path / "imgs" / "m.png"
    write_image(mask, (rng.random((40, 30)) > 0.7).astype(np.uint8) * 255)
    return paths, str(mask)


def _entries(folder):
    return sorted((folder / "arrays").glob("*.npz"))


def _no_decoding(*args, **kwargs):
    raise AssertionError("decoded although the cache holds the batch")


def test_batch_equals_the_readers_and_second_read_decodes_nothing(files, own_cache, monkeypatch):
    paths, mask = files
    first = cache.read_batch(paths, 24, kind="image")
    np.testing.assert_array_equal(first, np.stack([read_image(p, 24) for p in paths]))
    masks = cache.read_batch([None, mask, None], 24, kind="mask")
    np.testing.assert_array_equal(masks, np.stack([read_mask(p, 24) for p in [None, mask, None]]))
    assert len(_entries(own_cache)) == 2
    monkeypatch.setattr(cache, "_decode", _no_decoding)
    again = cache.read_batch(paths, 24, kind="image")
    np.testing.assert_array_equal(again, first)
    assert again.dtype == np.uint8 and again.shape == (5, 24, 24, 3)
    # another size, order or subset is another batch
    with pytest.raises(AssertionError, match="decoded"):
        cache.read_batch(paths[::-1], 24, kind="image")


def test_an_edited_file_is_read_again(files, own_cache):
    paths, _ = files
    before = cache.read_batch(paths, 16)
    write_image(paths[2], np.full((40, 30, 3), 7, np.uint8))
    st = os.stat(paths[2])
    os.utime(paths[2], ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    after = cache.read_batch(paths, 16)
    assert (after[2] == 7).all() and not (before[2] == 7).all()
    np.testing.assert_array_equal(after[[0, 1, 3, 4]], before[[0, 1, 3, 4]])


def test_a_damaged_entry_is_rebuilt(files, own_cache):
    paths, _ = files
    good = cache.read_batch(paths, 16)
    (entry,) = _entries(own_cache)
    entry.write_bytes(entry.read_bytes()[:100])  # a truncated file, as a full disk leaves
    np.testing.assert_array_equal(cache.read_batch(paths, 16), good)
    np.testing.assert_array_equal(cache.read_batch(paths, 16), good)  # and it was replaced
    assert not list((own_cache / "arrays").glob("*.tmp"))


def test_cache_off_writes_nothing(files, own_cache):
    paths, _ = files
    out = cache.read_batch(paths, 16, cache=False)
    assert out.shape == (5, 16, 16, 3) and not own_cache.exists()


def test_bad_file_names_the_file_with_the_cache_on(files, own_cache, tmp_path):
    paths, _ = files
    bad = tmp_path / "imgs" / "bad.png"
    bad.write_bytes(b"not an image at all")
    with pytest.raises(ShiftbenchError, match="bad.png: unreadable image"):
        cache.read_batch([*paths, str(bad)], 16)
    with pytest.raises(ShiftbenchError, match="missing.png: file not found"):
        cache.read_batch([*paths, str(tmp_path / "missing.png")], 16)
    assert not _entries(own_cache)


def test_least_recently_used_entries_go_first(files, own_cache, monkeypatch):
    paths, _ = files
    cache.read_batch(paths, 16)
    (oldest,) = _entries(own_cache)
    cache.read_batch(paths[:4], 16)
    kept = sum(e.stat().st_size for e in _entries(own_cache))
    monkeypatch.setenv("SHIFTBENCH_CACHE_GB", str((kept + 1) / 2**30))  # room for these two
    os.utime(oldest, (1, 1))
    cache.read_batch(paths[:3], 16)  # a third entry: the least recently used one goes
    left = _entries(own_cache)
    assert len(left) == 2 and oldest not in left


def _run_study(root, out, **over):
    """One in-process study on the tiny synthetic set (random weights, 64 px)."""
    from shiftbench.protocols import load_config
    from shiftbench.protocols.runner import StudyRunner

    options = dict(dataset="mvtec", root=str(root), weights="random", image_size=64, protocol="all")
    runner = StudyRunner(
        load_config(None, {**options, "workers": 1, **over}),
        out,
        progress=False,
        echo=lambda s: None,
    )
    return runner.run().path


def test_study_with_and_without_cache_gives_the_same_bytes(tiny_synthetic, tmp_path, own_cache):
    """Cached twins are the twins: scores and shift params equal a cache-free run's, and a
    second cached run shifts no image."""
    from shiftbench.transforms import twins

    def run(name, **over):
        return _run_study(tiny_synthetic, tmp_path / name, categories="brick", **over)

    fresh = run("fresh", image_cache=False)
    assert not own_cache.exists()
    cached = run("cached")
    assert _entries(own_cache)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(twins, "shift_batch", _no_decoding)
        mp.setattr(cache, "_decode", _no_decoding)
        again = run("again")
    stats = [
        json.loads((p / "manifest.json").read_text())["image_cache"] for p in (fresh, cached, again)
    ]
    assert [s["enabled"] for s in stats] == [False, True, True]
    assert stats[0]["hits"] == stats[0]["misses"] == 0
    # images, masks and twins of brick are made once; the clean fit's unit drops the twins
    # after scoring Test-shift and the Train-shift fit's unit reads them back: one hit
    assert stats[1]["misses"] == 3 and stats[1]["hits"] == 1
    assert stats[2]["misses"] == 0 and stats[2]["hits"] == 4
    for name in ("scores.parquet", "shift_params.parquet"):
        a, b, c = (pd.read_parquet(p / name) for p in (fresh, cached, again))
        pd.testing.assert_frame_equal(a, b)
        pd.testing.assert_frame_equal(a, c)
    assert len(load_dataset("mvtec", tiny_synthetic, ["brick"])) == len(
        pd.read_parquet(fresh / "shift_params.parquet")
    ) + int((pd.read_csv(fresh / "splits.csv")["split"] == "unused").sum())


def test_an_edited_reader_misses_the_cache(files, own_cache, monkeypatch):
    paths, _ = files
    cache.read_batch(paths, 16)
    monkeypatch.setattr(cache, "_reader_digest", lambda: "another reader")
    monkeypatch.setattr(cache, "_decode", _no_decoding)
    with pytest.raises(AssertionError, match="decoded"):
        cache.read_batch(paths, 16)


def test_source_digest_follows_the_bytes(tmp_path):
    src = tmp_path / "plugin.py"
    src.write_text("x = 1\n")
    before = cache.source_digest((str(src),))
    src.write_text("x = 2\n")
    cache.source_digest.cache_clear()
    assert cache.source_digest((str(src),)) != before


def test_cache_cli_info_and_clear(files, own_cache):
    from typer.testing import CliRunner

    from shiftbench.cli.main import app

    paths, mask = files
    cache.read_batch(paths, 16)
    cache.read_batch([mask], 16, kind="mask")
    runner = CliRunner()
    out = runner.invoke(app, ["cache", "info"])
    assert out.exit_code == 0 and "2 entries" in out.output and str(own_cache) in out.output
    out = runner.invoke(app, ["cache", "clear"])
    assert out.exit_code == 0 and "removed 2 entries" in out.output
    assert not _entries(own_cache) and cache.cache_info()["entries"] == 0


def test_a_sweep_holds_one_shifted_level_at_a_time(tiny_synthetic, tmp_path, own_cache):
    """With twins in the cache, each level is loaded when first used and dropped when its
    unit is done with it; results equal a cache-free run's, which keeps every level."""
    from shiftbench.protocols.images import ImageSource
    from shiftbench.protocols.plan import CLEAN

    resident = []
    original = ImageSource._load_twins

    def watching(self, category, seed, data, domain, splits):
        resident.append(sorted({d for d, _ in data.images} - {CLEAN}))
        return original(self, category, seed, data, domain, splits)

    def run(name, **over):
        return _run_study(
            tiny_synthetic, tmp_path / name, categories="washer", severity="1,3", **over
        )

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(ImageSource, "_load_twins", watching)
        streamed = run("streamed")
    # clean fit: level 1 then level 3; then the Train-shift fit of each level reloads it
    assert len(resident) == 4 and all(r == [] for r in resident)
    kept = run("kept", image_cache=False)
    for name in ("scores.parquet", "metrics.parquet"):
        a, b = pd.read_parquet(streamed / name), pd.read_parquet(kept / name)
        if name == "metrics.parquet":
            eff = {"fit_seconds", "ms_per_image", "images_per_second", "peak_memory_mb"}
            a, b = (t[~t["metric"].isin(eff)].reset_index(drop=True) for t in (a, b))
        pd.testing.assert_frame_equal(a, b)


def test_an_unwritable_cache_never_shifts_twice(tiny_synthetic, tmp_path, own_cache):
    """If the cache cannot keep the twins, each level stays in memory instead of being
    dropped and shifted again."""
    from shiftbench.transforms import twins

    calls = []
    original = twins.shift_batch

    def counting(suite, images, *args, **kwargs):
        calls.append(suite.severity)
        return original(suite, images, *args, **kwargs)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(cache, "_store", lambda path, arrays: None)  # a read-only cache folder
        mp.setattr(twins, "shift_batch", counting)
        out = _run_study(tiny_synthetic, tmp_path / "ro", categories="washer", severity="1,3")
    assert sorted(calls) == [1, 3] and not _entries(own_cache)
    assert (out / "metrics.parquet").is_file()


@pytest.mark.parametrize("value", ["lots", "-1", "nan"])
def test_a_bad_budget_is_one_line_before_any_work(value, own_cache, monkeypatch, capsys):
    from shiftbench.cli.main import main

    monkeypatch.setenv("SHIFTBENCH_CACHE_GB", value)
    for argv in (["cache", "info"], ["run", "--categories", "brick", "--no-progress"]):
        with pytest.raises(SystemExit) as exit_:
            main(argv)
        err = capsys.readouterr().err.strip()
        assert exit_.value.code == 2 and len(err.splitlines()) == 1
        assert err.startswith(f"error: SHIFTBENCH_CACHE_GB={value!r}") and "unset it" in err
    assert not own_cache.exists()  # failed before reading or generating anything


def test_entries_are_compressed_and_read_back_byte_identical(files, own_cache):
    import zipfile

    paths, mask = files
    first = cache.read_batch(paths, 24)
    (entry,) = _entries(own_cache)
    with zipfile.ZipFile(entry) as z:
        assert {i.compress_type for i in z.infolist()} == {zipfile.ZIP_DEFLATED}
    again = cache.read_batch(paths, 24)
    assert again.dtype == first.dtype and again.tobytes() == first.tobytes()
    info = cache.cache_info()
    assert info["raw_mb"] * 2**20 >= first.nbytes and info["ratio"] == pytest.approx(
        info["raw_mb"] / info["size_mb"]
    )
    # an entry written uncompressed (by an older version) is still read
    key = cache.batch_key(paths, 20, "image")
    raw = cache.entry_path("image-20px", key)
    np.savez(raw, a=np.zeros((5, 20, 20, 3), np.uint8))
    assert cache.read_batch(paths, 20).sum() == 0


@pytest.mark.parametrize("umask", [0o022, 0o077])
def test_cache_entries_follow_the_umask(files, own_cache, umask):
    old = os.umask(umask)
    try:
        cache.read_batch(files[0], 16)
    finally:
        os.umask(old)
    (entry,) = _entries(own_cache)
    assert entry.stat().st_mode & 0o777 == 0o666 & ~umask


def test_crop_cuts_images_and_masks_alike_and_is_keyed_only_when_set(files, own_cache):
    from shiftbench.data.io import center_crop

    paths, mask = files
    full = cache.read_batch(paths, 32)
    full_masks = cache.read_batch([mask, None], 32, kind="mask")
    cropped = cache.read_batch(paths, 32, crop=24)
    masks = cache.read_batch([mask, None], 32, kind="mask", crop=24)
    assert cropped.shape == (5, 24, 24, 3) and masks.shape == (2, 24, 24)
    np.testing.assert_array_equal(cropped, full[:, 4:28, 4:28])
    np.testing.assert_array_equal(masks, full_masks[:, 4:28, 4:28])
    np.testing.assert_array_equal(cropped, center_crop(full, 24))
    np.testing.assert_array_equal(read_image(paths[0], 32, crop=24), cropped[0])
    np.testing.assert_array_equal(read_mask(mask, 32, crop=24), masks[0])
    assert read_mask(None, 32, crop=24).shape == (24, 24)
    assert cache.read_batch([None, None], 32, kind="mask", crop=24).shape == (2, 24, 24)
    # keys: unchanged without crop, distinct with it
    assert cache.batch_key(paths, 32, "image", None) == cache.batch_key(paths, 32, "image")
    assert cache.batch_key(paths, 32, "image", 24) != cache.batch_key(paths, 32, "image")
    cropped_entries = [e for e in _entries(own_cache) if e.name.startswith("image-32px-crop24-")]
    assert len(cropped_entries) == 1
    np.testing.assert_array_equal(cache.read_batch(paths, 32, crop=24), cropped)  # from cache
    with pytest.raises(ShiftbenchError, match=r"^crop 40: larger than the image \(32 px\)"):
        cache.read_batch(paths, 32, crop=40)
