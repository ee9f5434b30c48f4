"""Small files that would take unbounded memory (issue 32): audio decoded only as far as its windows need and
refused past ``max_seconds``, images refused past ``max_pixels`` before decoding.

Memory is measured in a fresh subprocess as the growth of its peak RSS (``resource.getrusage``) over a
baseline taken once every library is imported.
"""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from anycl.adapters.audio import AudioAdapter
from anycl.adapters.image import ImageAdapter
from anycl.errors import ConfigError, DataError

ROOT = Path(__file__).resolve().parents[1]
MAX_PIXELS = 8192 * 8192  # the stated default (docs/scale.md)


def peak_growth_mb(code: str, timeout: int = 300) -> dict:
    """Run ``code`` in a fresh interpreter after ``baseline()`` is called in it; returns the JSON it prints
    last, with ``grown_mb``: how far its peak RSS rose above the baseline."""
    prelude = textwrap.dedent(
        """
        import json, resource, warnings
        warnings.simplefilter("ignore")
        import numpy, soundfile, torch, torchaudio, PIL.Image  # imported before the baseline
        import anycl.adapters
        def peak():
            return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        """
    )
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    p = subprocess.run(
        [sys.executable, "-c", prelude + textwrap.dedent(code)],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert p.returncode == 0, p.stderr[-3000:]
    return json.loads(p.stdout.strip().splitlines()[-1])


# -- audio -----------------------------------------------------------------------------------------------------
def silent_flac(path: Path, seconds: int, rate: int = 48000, channels: int = 2) -> Path:
    """A silent FLAC written block by block (a long silent file compresses to little: 600 s ≈ 110 KB)."""
    block = np.zeros((rate * 10, channels), dtype=np.int16)
    with sf.SoundFile(str(path), "w", samplerate=rate, channels=channels, format="FLAC", subtype="PCM_16") as f:
        for _ in range(seconds // 10):
            f.write(block)
    return path


def test_a_long_flac_costs_its_windows_not_its_length(tmp_path):
    path = silent_flac(tmp_path / "ten-minutes.flac", 600)  # 48 kHz stereo: 230 MB as float32 samples
    assert path.stat().st_size < 300_000
    out = peak_growth_mb(
        f"""
        from anycl.adapters.audio import AudioAdapter
        a = AudioAdapter(eval_crop="windows", eval_windows=4)
        base = peak()
        clip = a.load({str(path)!r})
        g = torch.Generator().manual_seed(0)
        views = [a.augment(clip, g), a.augment(clip, g), a.local_view(clip, g)]
        ev = a.eval_view(clip)
        print(json.dumps({{"grown_mb": peak() - base, "kind": type(clip).__name__, "shapes": [list(v.shape) for v in views],
                          "eval": list(ev.shape), "length": int(clip.shape[-1])}}))
        """
    )
    assert out["grown_mb"] < 150, out  # decoding it whole took ~1.3 GB
    assert out["kind"] == "LongClip" and out["length"] == 600 * 16000
    assert out["shapes"] == [[16000], [16000], [8000]] and out["eval"] == [4, 16000]


def test_a_file_longer_than_max_seconds_is_refused_naming_it_and_the_option(tmp_path):
    path = silent_flac(tmp_path / "long.flac", 20, rate=8000, channels=1)
    with pytest.raises(DataError, match=r"long\.flac' is 20 s long, more than the audio adapter's max_seconds=10;.*"):
        AudioAdapter(max_seconds=10).load(str(path))
    with pytest.raises(DataError, match="max_seconds"):  # encoded bytes too, by their header
        AudioAdapter(max_seconds=10).load({"bytes": path.read_bytes()})
    assert AudioAdapter(max_seconds=30).load(str(path)).shape[-1] == 20 * 16000  # within the limit
    assert AudioAdapter().max_seconds == 3 * 3600 and AudioAdapter().stream_seconds == 60  # the stated defaults


@pytest.mark.parametrize("bad", [0, -1, float("inf"), "60", True])
def test_bad_audio_limits_are_config_errors(bad):
    with pytest.raises(ConfigError, match="must be a positive number of seconds"):
        AudioAdapter(max_seconds=bad)
    with pytest.raises(ConfigError, match="must be a positive number of seconds"):
        AudioAdapter(stream_seconds=bad)


def test_audio_limits_are_saved_only_when_set():
    assert "max_seconds" not in AudioAdapter().config()  # a default run's saved config is unchanged
    cfg = AudioAdapter(max_seconds=120, stream_seconds=30).config()
    assert cfg["max_seconds"] == 120 and cfg["stream_seconds"] == 30
    again = AudioAdapter(**cfg)
    assert (again.max_seconds, again.stream_seconds) == (120, 30)


@pytest.mark.parametrize("rate,channels", [(44100, 2), (48000, 1), (16000, 2), (22050, 3), (8001, 2), (16001, 1)])
def test_streamed_windows_equal_the_same_windows_of_the_whole_decode(tmp_path, rate, channels):
    """The reference: the whole file decoded and resampled at once (as every clip shorter than stream_seconds
    is); the streamed windows must be the same samples, whatever the rate ratio."""
    rng = np.random.default_rng(rate + channels)
    x = (0.1 * rng.standard_normal((rate * 7 + 123, channels))).astype(np.float32)
    path = str(tmp_path / "noise.wav")
    sf.write(path, x, rate, subtype="FLOAT")
    opts = dict(eval_crop="windows", eval_windows=5, augment="strong")
    streamed, whole = AudioAdapter(stream_seconds=2, **opts), AudioAdapter(**opts)
    clip, wave = streamed.load(path), whole.load(path)
    assert type(clip).__name__ == "LongClip" and torch.is_tensor(wave) and clip.shape == wave.shape
    torch.testing.assert_close(streamed.eval_view(clip), whole.eval_view(wave), atol=1e-6, rtol=0)
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    for _ in range(3):
        torch.testing.assert_close(streamed.augment(clip, g1), whole.augment(wave, g2), atol=1e-6, rtol=0)
        torch.testing.assert_close(streamed.local_view(clip, g1), whole.local_view(wave, g2), atol=1e-6, rtol=0)
    torch.testing.assert_close(clip.window(0, 500), wave[:500], atol=1e-6, rtol=0)  # the first samples
    tail = clip.window(clip.length - 300, 400)  # the last samples, then silence past the end
    torch.testing.assert_close(tail[:300], wave[-300:], atol=1e-6, rtol=0)
    assert not tail[300:].any()


def test_small_files_at_odd_sample_rates_resample_with_a_small_kernel(tmp_path):
    """4001 and 8001 Hz share no factor with 16000: their exact sinc kernels have 64 M and 128 M taps (2 and 4 GB
    grown while built, from files of 0.8 and 1.6 KB). Each is read at the nearest ratio with a small kernel."""
    paths = []
    for rate in (4001, 8001, 22222):
        paths.append(str(tmp_path / f"odd{rate}.wav"))
        sf.write(paths[-1], np.zeros(rate // 10, np.float32), rate)
        assert os.path.getsize(paths[-1]) < 5000
    out = peak_growth_mb(
        f"""
        from anycl.adapters.audio import AudioAdapter
        a = AudioAdapter()
        base = peak()
        shapes = [list(a.load(p).shape) for p in {paths!r}]
        print(json.dumps({{"grown_mb": peak() - base, "shapes": shapes}}))
        """
    )
    assert out["grown_mb"] < 400, out  # ~4.5 GB before
    assert out["shapes"] == [[1600], [1600], [1600]]


@pytest.mark.parametrize("rate", [4001, 8001, 16001, 22222, 44056, 767_999])
def test_the_near_ratio_is_within_a_few_parts_in_ten_thousand_and_its_kernel_fits(rate, caplog):
    from fractions import Fraction

    from anycl.adapters import audio_io

    src, out = audio_io.resample_periods(rate, 16000)
    assert audio_io.kernel_taps(src, out) <= audio_io.KERNEL_TAPS
    assert abs(float(Fraction(out * rate, src * 16000)) - 1) < 2e-4
    if src != out:  # a ratio of 1 (16,001 Hz) reads the samples as they are: no kernel
        assert audio_io.resampler(rate, 16000).kernel.numel() <= audio_io.KERNEL_TAPS
    else:
        wave = torch.randn(100)
        assert audio_io.resample(wave, rate, 16000) is wave


def test_common_rates_keep_their_exact_ratio():
    from anycl.adapters import audio_io

    for rate, periods in [
        (44100, (441, 160)),
        (48000, (3, 1)),
        (22050, (441, 320)),
        (8000, (1, 2)),
        (11025, (441, 640)),
    ]:
        assert audio_io.resample_periods(rate, 16000) == periods


def test_an_odd_rate_is_resampled_at_the_ratio_it_says_and_warns(tmp_path, caplog):
    """The reference is the sine itself: at the near ratio src/out, output sample j is the source at
    j x src / out frames, so a 440 Hz tone comes out as sin(2 pi 440 j src / (out rate))."""
    import logging

    from anycl.adapters import audio_io

    rate = 8001
    t = np.arange(rate) / rate
    path = str(tmp_path / "tone.wav")
    sf.write(path, (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), rate, subtype="FLOAT")
    audio_io.resample_periods.cache_clear()
    with caplog.at_level(logging.WARNING, logger="anycl"):
        wave = AudioAdapter().load(path)
    src, out = audio_io.resample_periods(rate, 16000)
    assert "resampling 8001 Hz to 16000 Hz" in caplog.text and f"ratio {out}/{src}" in caplog.text
    j = np.arange(wave.shape[-1])
    ref = 0.5 * np.sin(2 * np.pi * 440 * j * src / (out * rate))
    inner = slice(200, -200)  # the kernel's edges see the clip's zero padding
    np.testing.assert_allclose(wave.numpy()[inner], ref[inner], atol=2e-3)


def test_a_file_above_the_highest_sample_rate_is_refused_naming_it(tmp_path):
    path = str(tmp_path / "fast.wav")
    sf.write(path, np.zeros(800, np.float32), 800_000)
    with pytest.raises(DataError, match=r"fast\.wav' says its sample rate is 800,000 Hz, above the 768,000 Hz"):
        AudioAdapter().load(path)


@pytest.mark.parametrize("channel", ["mean", 2])
def test_a_file_is_decoded_block_by_block_to_the_samples_of_a_whole_decode(tmp_path, monkeypatch, channel):
    from anycl.adapters import audio_io

    rng = np.random.default_rng(0)
    x = (0.1 * rng.standard_normal((16000, 6))).astype(np.float32)
    path = str(tmp_path / "six.wav")
    sf.write(path, x, 16000, subtype="FLOAT")
    whole = AudioAdapter(channel=channel).load(path)
    monkeypatch.setattr(audio_io, "DECODE_SAMPLES", 6 * 1000 + 5)  # blocks of 1000 frames: 16 reads
    blocks = AudioAdapter(channel=channel).load(path)
    ref = x.mean(axis=1) if channel == "mean" else x[:, channel]
    assert torch.equal(blocks, whole) and torch.equal(blocks, torch.from_numpy(ref))
    x[12345, 4] = np.nan  # in the thirteenth block, channel 4
    sf.write(path, x, 16000, subtype="FLOAT")
    with pytest.raises(
        DataError, match=r"six\.wav' has 1 non-finite sample\(s\) \(NaN first, at sample 12345 of channel 4\)"
    ):
        AudioAdapter(channel=channel).load(path)


def test_a_small_vorbis_file_of_many_channels_costs_its_mono_samples(tmp_path):
    """255 silent Vorbis channels at 48 kHz, 4 s: a 10 KB file whose samples are 196 MB as float32 (decoded whole,
    then transposed: ~390 MB grown); decoded block by block and mixed down, 0.8 MB of mono samples."""
    path = tmp_path / "many.ogg"
    with sf.SoundFile(str(path), "w", samplerate=48000, channels=255, format="OGG") as f:
        for _ in range(4):
            f.write(np.zeros((48000, 255), np.float32))
    assert path.stat().st_size < 50_000
    out = peak_growth_mb(
        f"""
        from anycl.adapters.audio import AudioAdapter
        a = AudioAdapter()
        base = peak()
        shape = list(a.load({str(path)!r}).shape)
        print(json.dumps({{"grown_mb": peak() - base, "shape": shape}}))
        """
    )
    assert out["grown_mb"] < 100, out
    assert out["shape"] == [4 * 16000]


def test_a_streamed_window_with_nan_samples_names_the_file(tmp_path):
    x = np.zeros((8000 * 5, 1), dtype=np.float32)
    x[8000 * 2 + 10] = np.nan
    path = str(tmp_path / "nan.wav")
    sf.write(path, x, 8000, subtype="FLOAT")
    clip = AudioAdapter(stream_seconds=1, eval_crop="windows", eval_windows=5).load(path)
    with pytest.raises(DataError, match=r"nan\.wav' has 1 non-finite sample"):
        AudioAdapter(stream_seconds=1, eval_crop="windows", eval_windows=5).eval_view(clip)


def test_an_audio_path_that_is_not_a_regular_file_is_refused(tmp_path):
    import threading
    import time

    fifo = tmp_path / "pipe.wav"
    os.mkfifo(fifo)  # opening it for reading blocks until a writer comes
    done = threading.Event()

    def writer():  # a writer that comes only if someone is blocked reading (so a failing test does not hang)
        while not done.is_set():
            try:
                os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
                return
            except OSError:
                time.sleep(0.05)

    threading.Thread(target=writer, daemon=True).start()
    try:
        with pytest.raises(DataError, match="is not a regular file"):
            AudioAdapter().load(str(fifo))
    finally:
        done.set()


# -- images ----------------------------------------------------------------------------------------------------
def test_a_small_png_of_a_huge_image_is_refused_before_decoding(tmp_path):
    from PIL import Image

    path = tmp_path / "bomb.png"
    Image.new("1", (12000, 12000)).save(path)  # 144 megapixels in a few KB (RGB: 432 MB)
    assert path.stat().st_size < 500_000
    out = peak_growth_mb(
        f"""
        from anycl.adapters.image import ImageAdapter
        from anycl.errors import DataError
        a = ImageAdapter()
        base = peak()
        try:
            a.load({str(path)!r}); msg = None
        except DataError as exc:
            msg = str(exc)
        print(json.dumps({{"grown_mb": peak() - base, "error": msg}}))
        """
    )
    assert out["error"] is not None and "bomb.png' is 12000x12000 pixels" in out["error"]
    assert "max_pixels=67,108,864" in out["error"] and "adapter_options={'max_pixels': ...}" in out["error"]
    assert out["grown_mb"] < 50, out  # decoding it took ~690 MB


def test_max_pixels_bounds_files_and_bytes_and_is_saved_only_when_set(tmp_path):
    import io

    from PIL import Image

    img = Image.new("RGB", (120, 100), (10, 20, 30))
    path = tmp_path / "small.png"
    img.save(path)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    small = ImageAdapter(max_pixels=11_999)
    for item in (str(path), buf.getvalue(), {"bytes": buf.getvalue(), "path": None}):
        with pytest.raises(DataError, match=r"is 120x100 pixels, more than the image adapter's max_pixels=11,999"):
            small.load(item)
    assert ImageAdapter(max_pixels=12_000).load(str(path)).shape == (3, 100, 120)
    from anycl.adapters.image_io import MAX_PIXELS as stated

    assert stated == MAX_PIXELS and "max_pixels" not in ImageAdapter().config()
    assert ImageAdapter(**ImageAdapter(max_pixels=12_000).config()).max_pixels == 12_000
    assert ImageAdapter().load(img).shape == (3, 100, 120)  # a decoded PIL image is already in memory
    with pytest.raises(ConfigError, match="max_pixels must be a positive integer"):
        ImageAdapter(max_pixels=0)


# -- compressed tables -----------------------------------------------------------------------------------------
def _gzip_rows(path: Path, header: bytes, row: bytes, count: int) -> Path:
    import gzip

    with gzip.open(path, "wb", compresslevel=9) as f:
        f.write(header)
        for _ in range(count):
            f.write(row)
    return path


@pytest.mark.parametrize(
    "name,header,row",
    [
        ("bomb.csv.gz", b"anchor,positive\n", b"the same anchor,the same positive\n"),
        ("bomb.jsonl.gz", b"", b'{"anchor": "the same anchor", "positive": "the same positive"}\n'),
    ],
)
def test_a_gzip_table_that_expands_past_the_ratio_is_refused_before_pandas_reads_it(
    tmp_path, monkeypatch, name, header, row
):
    from anycl.data import tables
    from anycl.data.inputs import to_rows

    monkeypatch.setattr(tables, "EXPANSION_FLOOR_BYTES", 2**20)  # the default floor is 64 MiB: a small file here
    path = _gzip_rows(tmp_path / name, header, row, 100_000)  # 3.4-6.4 MB of one row: ~500x its size
    monkeypatch.setattr("pandas.read_csv", lambda *a, **k: pytest.fail("pandas read the file"))
    monkeypatch.setattr("pandas.read_json", lambda *a, **k: pytest.fail("pandas read the file"))
    with pytest.raises(DataError, match=rf"{name}' expands to more than [0-9,]+ bytes, over 100 times its"):
        tables.read_table(path)
    with pytest.raises(DataError, match="a compression bomb"):
        to_rows(str(path))


def test_a_gzip_table_of_real_text_reads_as_its_plain_file(tmp_path, monkeypatch):
    from anycl.data import tables

    monkeypatch.setattr(tables, "EXPANSION_FLOOR_BYTES", 2**16)  # past the floor: the ratio decides, and text passes
    rng = np.random.default_rng(0)
    words = [f"w{int(i)}" for i in rng.integers(0, 5000, size=60_000)]
    lines = ["anchor,positive"] + [
        " ".join(words[i : i + 6]) + "," + " ".join(words[i + 6 : i + 12]) for i in range(0, 60_000, 12)
    ]
    plain = tmp_path / "pairs.csv"
    plain.write_text("\n".join(lines) + "\n")
    packed = _gzip_rows(tmp_path / "pairs.csv.gz", plain.read_bytes(), b"", 0)
    assert tables.check_expansion(packed) == plain.stat().st_size > 2**16
    pd_testing = pytest.importorskip("pandas.testing")
    pd_testing.assert_frame_equal(tables.read_table(packed), tables.read_table(plain))


def _dictionary_bomb(path: Path, rows: int, value_len: int, nested: bool = False) -> Path:
    """Every row points to one long dictionary string (``nested``: as a one-item list of negatives); written without
    Arrow's schema, so a reader sees plain string columns and decodes each reference into its own copy."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    one = pa.DictionaryArray.from_arrays(pa.array(np.zeros(rows, dtype=np.int32)), pa.array(["x" * value_len]))
    if nested:
        one = pa.ListArray.from_arrays(pa.array(np.arange(rows + 1, dtype=np.int32)), one)
    table = pa.table({"anchor": [f"a{i}" for i in range(rows)], ("negatives" if nested else "positive"): one})
    pq.write_table(table, str(path), compression="zstd", store_schema=False)
    return path


@pytest.mark.parametrize("nested", [False, True])
def test_a_parquet_file_of_repeated_dictionary_strings_is_refused_before_pandas_reads_it(tmp_path, monkeypatch, nested):
    from anycl.data import tables

    monkeypatch.setattr(tables, "EXPANSION_FLOOR_BYTES", 2**20)
    path = _dictionary_bomb(tmp_path / "bomb.parquet", 2000, 10_000, nested)  # 20 MB of text in a few KB
    assert path.stat().st_size < 20_000
    monkeypatch.setattr("pandas.read_parquet", lambda *a, **k: pytest.fail("pandas read the file"))
    with pytest.raises(DataError, match=r"bomb\.parquet' holds text of more than [0-9,]+ bytes, over 100 times"):
        tables.read_table(path)


def test_a_parquet_file_declaring_more_rows_than_its_bytes_can_hold_is_refused(tmp_path, monkeypatch):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from anycl.data import tables

    monkeypatch.setattr(tables, "EXPANSION_FLOOR_BYTES", 2**20)
    path = tmp_path / "zeros.parquet"
    pq.write_table(pa.table({"label": np.zeros(1_000_000, np.int64)}), str(path), compression="zstd")
    monkeypatch.setattr("pandas.read_parquet", lambda *a, **k: pytest.fail("pandas read the file"))
    with pytest.raises(DataError, match=r"zeros\.parquet' declares more than [0-9,]+ bytes"):
        tables.read_table(path)


def test_a_small_parquet_bomb_costs_little_memory(tmp_path):
    """12 KB, 5,000 rows each pointing to one 100 KB string: pandas.read_parquet grows the peak by ~880 MB."""
    path = _dictionary_bomb(tmp_path / "bomb.parquet", 5000, 100_000)
    out = peak_growth_mb(
        f"""
        from anycl.data.tables import read_table
        from anycl.errors import DataError
        base = peak()
        try:
            read_table({str(path)!r})
            said = ""
        except DataError as exc:
            said = str(exc)
        print(json.dumps({{"grown_mb": peak() - base, "said": said}}))
        """
    )
    assert "holds text of more than" in out["said"], out
    assert out["grown_mb"] < 200, out


def test_a_parquet_table_of_real_text_reads_as_pandas_reads_it(tmp_path, monkeypatch):
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    from anycl.data import tables

    monkeypatch.setattr(tables, "EXPANSION_FLOOR_BYTES", 2**10)  # past the floor: the ratio decides, and text passes
    rng = np.random.default_rng(0)
    rows = 3000
    words = [" ".join(f"w{int(i)}" for i in rng.integers(0, 5000, size=8)) for _ in range(rows)]
    table = pa.table(
        {
            "anchor": words,
            "positive": words[1:] + [None],
            "negatives": [[words[i - 1], words[i - 2]] if i % 3 else [] for i in range(rows)],
            "label": rng.integers(0, 5, size=rows),
        }
    )
    path = tmp_path / "pairs.parquet"
    pq.write_table(table, str(path))
    pd.testing.assert_frame_equal(tables.read_table(path), pd.read_parquet(path))


def _saved_folder(path: Path, table, compression=None) -> Path:
    """A ``save_to_disk`` folder whose Arrow stream is ``table`` as it is (a dictionary column stays one), its buffers
    compressed with ``compression`` if given."""
    import datasets
    import pyarrow as pa

    datasets.Dataset.from_dict({name: ["x"] for name in table.column_names}).save_to_disk(str(path))
    (arrow,) = path.glob("*.arrow")
    options = pa.ipc.IpcWriteOptions(compression=compression)
    with pa.OSFile(str(arrow), "wb") as sink, pa.ipc.new_stream(sink, table.schema, options=options) as writer:
        writer.write_table(table)
    return path


def test_a_saved_dataset_of_repeated_dictionary_strings_is_refused_before_datasets_loads_it(tmp_path, monkeypatch):
    import datasets
    import pyarrow as pa

    from anycl.data import open as data_open
    from anycl.data import tables

    monkeypatch.setattr(tables, "EXPANSION_FLOOR_BYTES", 2**20)
    rows = 2000
    one = pa.DictionaryArray.from_arrays(pa.array(np.zeros(rows, dtype=np.int32)), pa.array(["x" * 10_000]))
    folder = _saved_folder(tmp_path / "saved", pa.table({"anchor": one, "positive": one}))  # 40 MB of text in 37 KB
    assert sum(f.stat().st_size for f in folder.iterdir()) < 50_000
    monkeypatch.setattr(datasets, "load_from_disk", lambda *a, **k: pytest.fail("datasets loaded the folder"))
    with pytest.raises(DataError, match=r"saved' holds data of more than [0-9,]+ bytes, over 100 times"):
        data_open.open_dataset(str(folder))


def test_a_saved_dataset_of_real_text_loads_as_before(tmp_path, monkeypatch):
    import datasets

    from anycl.data import tables
    from anycl.data.inputs import to_rows
    from anycl.data.open import open_dataset

    monkeypatch.setattr(tables, "EXPANSION_FLOOR_BYTES", 2**10)  # past the floor: the ratio decides, and text passes
    rng = np.random.default_rng(0)
    words = [" ".join(f"w{int(i)}" for i in rng.integers(0, 5000, size=8)) for _ in range(2000)]
    datasets.Dataset.from_dict({"anchor": words, "positive": words[::-1]}).save_to_disk(str(tmp_path / "saved"))
    rows = to_rows(open_dataset(str(tmp_path / "saved")))
    assert [r["anchor"] for r in rows] == words and [r["positive"] for r in rows] == words[::-1]


def test_decoded_bytes_counts_each_dictionary_reference_at_its_value_s_size():
    import pyarrow as pa

    from anycl.data.tables import decoded_bytes

    idx = pa.array([0, 1, 1, None, 1], type=pa.int32())
    words = pa.DictionaryArray.from_arrays(idx, pa.array(["ab", "cdef"]))
    assert decoded_bytes(words) == 2 + 4 + 4 + 4 + 8 * 5  # the null counts no text; 8 bytes a row for offsets
    numbers = pa.DictionaryArray.from_arrays(idx, pa.array([7, 9], type=pa.int64()))
    assert decoded_bytes(numbers) == 8 * 5
    nested = pa.ListArray.from_arrays(pa.array([0, 2, 5], type=pa.int32()), words)
    assert decoded_bytes(nested) == decoded_bytes(words) + 8 * 2
    plain = pa.array(["ab", "cdef"])
    assert decoded_bytes(plain) == plain.nbytes


@pytest.mark.parametrize("compression", [None, "zstd", "lz4"])
def test_the_ipc_reader_tells_compressed_batches_as_pyarrow_wrote_them(tmp_path, compression):
    import pyarrow as pa

    from anycl.data.arrow_ipc import compressed, has_compressed_buffers

    words = pa.DictionaryArray.from_arrays(pa.array(np.zeros(50, np.int32)), pa.array(["y" * 50]))
    table = pa.table({"anchor": ["x" * 100] * 50, "positive": words})
    path = tmp_path / "s.arrow"
    options = pa.ipc.IpcWriteOptions(compression=compression)
    with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_stream(sink, table.schema, options=options) as writer:
        writer.write_table(table)
    kinds = [(m.type, compressed(m.metadata)) for m in pa.ipc.MessageReader.open_stream(pa.memory_map(str(path)))]
    packed = compression is not None
    assert kinds == [("schema", False), ("dictionary", packed), ("record batch", packed)]
    assert has_compressed_buffers(path) is packed
    (tmp_path / "text.arrow").write_text("not an arrow stream")
    assert has_compressed_buffers(tmp_path / "text.arrow") is False


def test_a_saved_dataset_with_compressed_arrow_buffers_is_refused_before_datasets_loads_it(tmp_path, monkeypatch):
    import datasets
    import pyarrow as pa

    from anycl.data.open import open_dataset

    folder = _saved_folder(tmp_path / "saved", pa.table({"anchor": ["a"] * 1000}), compression="zstd")
    monkeypatch.setattr(datasets, "load_from_disk", lambda *a, **k: pytest.fail("datasets loaded the folder"))
    with pytest.raises(DataError, match=r"saved' holds an Arrow file with compressed buffers \(data-00000-of-00001"):
        open_dataset(str(folder))
