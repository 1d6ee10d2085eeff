"""The photo pipeline: what gets rejected (and how cheaply), and that what passes is clean."""

from __future__ import annotations

import io
import json
import os
import pickle
import shutil
import struct
import subprocess
import sys
import time
import tracemalloc
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from PIL import Image, ImageChops, ImageFile, ImageOps, ImageStat

from services.intake import photos
from services.intake.http_errors import PHOTO_REJECTIONS
from services.intake.photos import (
    DEFAULT_POLICY,
    PhotoPolicy,
    PhotoRejected,
    SanitizedPhoto,
    sanitize_photo,
)
from tests import photo_fixtures as fx

REPO = Path(__file__).resolve().parents[3]

# What a Pillow-written baseline JPEG legitimately carries: the JFIF APP0 header.
JFIF_INFO_KEYS = {"jfif", "jfif_version", "jfif_unit", "jfif_density", "dpi"}
METADATA_INFO_KEYS = {"exif", "icc_profile", "xmp", "XML:com.adobe.xmp", "comment", "photoshop"}


def http_status(exc: PhotoRejected) -> int | None:
    """The status the gateway answers a rejected photo with (services/intake/http_errors.py)."""
    return PHOTO_REJECTIONS.status_of(exc.code)


def _reject(data: bytes, policy: PhotoPolicy = DEFAULT_POLICY) -> PhotoRejected:
    with pytest.raises(PhotoRejected) as info:
        sanitize_photo(data, policy)
    return info.value


def _open(result: SanitizedPhoto) -> Image.Image:
    im = Image.open(io.BytesIO(result.content))
    im.load()
    return im


def _jpeg_markers(data: bytes) -> list[int]:
    """Markers of the segments before the first scan, plus SOS itself."""
    assert data[:2] == b"\xff\xd8"
    markers, i = [], 2
    while i < len(data):
        assert data[i] == 0xFF, f"expected a marker at {i}"
        marker = data[i + 1]
        markers.append(marker)
        if marker == 0xDA:
            return markers
        i += 2 + struct.unpack(">H", data[i + 2 : i + 4])[0]
    raise AssertionError("no SOS marker")


def _mean_diff(a: Image.Image, b: Image.Image) -> float:
    assert a.size == b.size
    return max(ImageStat.Stat(ImageChops.difference(a.convert("RGB"), b.convert("RGB"))).mean)


def _truncated(data: bytes, keep: float = 0.6) -> bytes:
    return data[: int(len(data) * keep)]


def _flip_byte(data: bytes, index: int) -> bytes:
    out = bytearray(data)
    out[index] ^= 0xFF
    return bytes(out)


# --------------------------------------------------------------------------------------------
# rejections

NASTY = [
    # id, input factory, code, status, message fragment
    ("empty", lambda: b"", "empty", 422, "photo is empty"),
    ("html-as-jpg", fx.html_disguised_as_jpeg, "unsupported_type", 415, "(detected: HTML)"),
    ("gif", fx.gif_bytes, "unsupported_type", 415, "(detected: GIF)"),
    ("heic", fx.heic_header_bytes, "unsupported_type", 415, "(detected: HEIC)"),
    ("wrong-magic", fx.wrong_magic_bytes, "unsupported_type", 415, "unknown binary data"),
    ("text", lambda: b"just some text\n", "unsupported_type", 415, "(detected: text)"),
    ("svg", lambda: b'<svg xmlns="http://www.w3.org/2000/svg"/>', "unsupported_type", 415, "SVG"),
    ("pdf", lambda: b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n", "unsupported_type", 415, "PDF"),
    ("bmp", lambda: fx.encode(Image.new("RGB", (8, 8)), "BMP"), "unsupported_type", 415, "BMP"),
    ("tiff", lambda: fx.encode(Image.new("RGB", (8, 8)), "TIFF"), "unsupported_type", 415, "TIFF"),
    ("png-magic-jpeg-body", fx.png_magic_with_jpeg_body, "corrupt", 422, "PNG"),
    ("jpeg-magic-only", lambda: b"\xff\xd8\xff\xe0garbage", "corrupt", 422, "JPEG"),
    ("truncated-jpeg", fx.truncated_jpeg, "corrupt", 422, "truncated or corrupt"),
    ("truncated-jpeg-5pc", lambda: fx.truncated_jpeg(0.05), "corrupt", 422, "JPEG"),
    ("truncated-jpeg-no-eoi", lambda: fx.truncated_jpeg(0.995), "corrupt", 422, "JPEG"),
    ("truncated-png", lambda: _truncated(fx.png_bytes((300, 200), "RGB")), "corrupt", 422, "PNG"),
    ("truncated-webp", lambda: _truncated(fx.webp_bytes()), "corrupt", 422, "WebP"),
    ("png-bad-crc", lambda: _flip_byte(fx.png_bytes(mode="RGB"), 60), "corrupt", 422, "PNG"),
    ("jpeg-zero-height", lambda: fx.huge_dimensions_jpeg((16, 0)), "corrupt", 422, "16x0"),
    ("many-scans", fx.jpeg_with_many_scans, "corrupt", 422, "scans"),
    ("bomb-png", fx.decompression_bomb_png, "too_many_pixels", 422, "30000x30000"),
    ("bomb-png-49mp", lambda: fx.decompression_bomb_png((7000, 7000)), "too_many_pixels", 422,
     "49.0 megapixels"),
    ("huge-jpeg", fx.huge_dimensions_jpeg, "too_many_pixels", 422, "20000x20000"),
    ("long-side", lambda: fx.huge_dimensions_jpeg((13000, 100)), "too_many_pixels", 422,
     "12000 pixels"),
    ("webp-canvas-bomb", fx.webp_canvas_bomb, "too_many_pixels", 422, "9000x9000"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("factory", "code", "status", "fragment"),
    [pytest.param(*case[1:], id=case[0]) for case in NASTY],
)
def test_nasty_inputs_are_rejected_with_code_and_status(factory, code, status, fragment):
    exc = _reject(factory())
    assert (exc.code, http_status(exc)) == (code, status), exc.message
    assert fragment in exc.message
    assert str(exc) == exc.message
    assert exc.message.startswith("photo ")


def test_unsupported_type_message_names_the_allowed_types():
    expected = "photo is not a JPEG, PNG or WebP image (detected: GIF)"
    assert _reject(fx.gif_bytes()).message == expected
    jpeg_only = PhotoPolicy(allowed_formats=frozenset({"JPEG"}))
    exc = _reject(fx.png_bytes(), jpeg_only)
    assert (exc.code, exc.message) == (
        "unsupported_type",
        "photo is not a JPEG image (detected: PNG)",
    )


def test_too_large_is_checked_on_the_encoded_size_before_parsing():
    exc = _reject(b"\xff\xd8\xff" + bytes(DEFAULT_POLICY.max_bytes))
    assert (exc.code, http_status(exc)) == ("too_large", 413)
    assert "10485763 bytes" in exc.message and "10.0 MB" in exc.message
    small = PhotoPolicy(max_bytes=1000)
    assert _reject(fx.realistic_photo_jpeg(), small).code == "too_large"
    # exactly at the limit is fine
    data = fx.jpeg_bytes((64, 48))
    assert sanitize_photo(data, PhotoPolicy(max_bytes=len(data))).source_format == "JPEG"


def test_pixel_limits_come_from_the_policy():
    data = fx.jpeg_bytes((200, 100))
    assert sanitize_photo(data, PhotoPolicy(max_pixels=20_000)).width == 200
    assert _reject(data, PhotoPolicy(max_pixels=19_999)).code == "too_many_pixels"
    assert _reject(data, PhotoPolicy(max_side=199)).code == "too_many_pixels"
    for make in (lambda s: fx.png_bytes(s, "RGB"), fx.webp_bytes):
        assert _reject(make((200, 100)), PhotoPolicy(max_side=150)).code == "too_many_pixels"


def test_pillow_bomb_guard_is_mapped_when_our_header_read_finds_nothing(monkeypatch):
    """Behind our own header read, Pillow's DecompressionBombError / Warning still count."""
    monkeypatch.setattr(photos, "_header_sizes", lambda data, fmt: [])
    assert _reject(fx.decompression_bomb_png()).code == "too_many_pixels"  # Error: > 179 MP
    assert _reject(fx.huge_dimensions_jpeg()).code == "too_many_pixels"
    ninety_mp = fx.huge_dimensions_jpeg((10000, 9000))  # Warning: > 89.5 MP
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        assert _reject(ninety_mp).code == "too_many_pixels"
    with pytest.warns(Image.DecompressionBombWarning):
        assert _reject(ninety_mp).code == "too_many_pixels"  # then our check after open


def test_bombs_are_rejected_fast_without_allocating_the_image():
    bombs = {
        "png 30000x30000": fx.decompression_bomb_png(),
        "png 7000x7000": fx.decompression_bomb_png((7000, 7000)),
        "jpeg 20000x20000": fx.huge_dimensions_jpeg(),
        "webp canvas 9000x9000": fx.webp_canvas_bomb(),
        "webp canvas 16383x16383": fx.webp_canvas_bomb((16383, 16383)),
    }
    stats_before = Image.core.get_stats()["new_count"]
    tracemalloc.start()
    try:
        for name, data in bombs.items():
            started = time.perf_counter()
            assert _reject(data).code == "too_many_pixels", name
            assert time.perf_counter() - started < 0.5, name
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 50 * 1024 * 1024
    # tracemalloc only sees the Python heap; Pillow allocates pixels with C malloc. Its own
    # counter of image buffers shows none was created.
    assert Image.core.get_stats()["new_count"] == stats_before


def test_bombs_keep_a_fresh_process_small_and_the_module_eventlet_free():
    """Peak memory of a process that sanitises every bomb (decoding any of them would cost
    0.2 to 3.6 GB), and proof that the module pulls in no eventlet.

    Resident memory (ru_maxrss) shows no pixels were decoded; on Linux the virtual peak (VmPeak)
    also shows nothing was reserved: libwebp callocs its whole canvas inside Image.open, which
    RSS does not see but a memory rlimit would.
    """
    script = """
import resource, sys
from tests import photo_fixtures as fx
from services.intake.photos import PhotoRejected, sanitize_photo
bombs = [fx.decompression_bomb_png(), fx.decompression_bomb_png((7000, 7000)),
         fx.huge_dimensions_jpeg(), fx.webp_canvas_bomb(), fx.webp_canvas_bomb((16383, 16383))]
for data in bombs:
    try:
        sanitize_photo(data)
    except PhotoRejected as exc:
        assert exc.code == "too_many_pixels", exc
    else:
        raise SystemExit("bomb accepted")
try:
    # VmHWM / VmPeak belong to this process image; ru_maxrss would include the parent's RSS at fork on Linux
    with open("/proc/self/status") as status:
        fields = {line.split(":")[0]: int(line.split()[1]) // 1024 for line in status if line.startswith("Vm")}
    vm_peak, rss = fields["VmPeak"], fields["VmHWM"]
except OSError:
    vm_peak = -1
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
print(rss, vm_peak, "eventlet" in sys.modules)
"""
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    rss_mb, vm_peak_mb, eventlet_loaded = done.stdout.split()
    assert int(rss_mb) < 120, f"peak RSS {rss_mb} MB"
    assert int(vm_peak_mb) < 400, f"peak virtual size {vm_peak_mb} MB"
    assert eventlet_loaded == "False"


# --------------------------------------------------------------------------------------------
# what gets through, and how it comes out


@pytest.mark.parametrize(
    ("data", "source_format", "size"),
    [
        pytest.param(fx.jpeg_with_gps(*fx.JAKARTA), "JPEG", (800, 600), id="jpeg"),
        pytest.param(fx.jpeg_bytes(mode="L"), "JPEG", (64, 48), id="jpeg-grey"),
        pytest.param(fx.jpeg_bytes(mode="CMYK"), "JPEG", (64, 48), id="jpeg-cmyk"),
        pytest.param(fx.jpeg_bytes(progressive=True), "JPEG", (64, 48), id="jpeg-progressive"),
        pytest.param(fx.png_bytes((320, 240), "RGBA"), "PNG", (320, 240), id="png-rgba"),
        pytest.param(fx.png_bytes((320, 240), "RGB"), "PNG", (320, 240), id="png-rgb"),
        pytest.param(fx.png_bytes((320, 240), "LA"), "PNG", (320, 240), id="png-la"),
        pytest.param(fx.png_bytes((320, 240), "L"), "PNG", (320, 240), id="png-l"),
        pytest.param(fx.png_bytes((320, 240), "P"), "PNG", (320, 240), id="png-palette"),
        pytest.param(fx.png_bytes((320, 240), "1"), "PNG", (320, 240), id="png-1bit"),
        pytest.param(fx.png_bytes((320, 240), "I;16"), "PNG", (320, 240), id="png-16bit"),
        pytest.param(fx.webp_bytes((320, 240)), "WEBP", (320, 240), id="webp"),
        pytest.param(fx.webp_bytes(lossless=True, alpha=True), "WEBP", (320, 240), id="webp-ll"),
        pytest.param(fx.webp_bytes(frames=3), "WEBP", (320, 240), id="webp-animated"),
    ],
)
def test_accepted_formats_become_a_baseline_rgb_jpeg(data, source_format, size):
    result = sanitize_photo(data)
    assert result.source_format == source_format
    assert result.content_type == "image/jpeg"
    assert (result.width, result.height) == size
    im = _open(result)
    assert (im.format, im.mode, im.size) == ("JPEG", "RGB", size)
    assert not im.info.get("progressive") and not im.info.get("progression")
    markers = _jpeg_markers(result.content)
    assert 0xC0 in markers  # SOF0: baseline DCT
    assert not {0xC1, 0xC2, 0xC3} & set(markers)


def test_bytes_like_inputs_are_accepted_and_other_types_refused():
    data = fx.jpeg_bytes()
    expected = sanitize_photo(data)
    assert sanitize_photo(bytearray(data)) == expected
    assert sanitize_photo(memoryview(data)) == expected
    with pytest.raises(TypeError):
        sanitize_photo(data.decode("latin-1"))  # type: ignore[arg-type]


def test_polyglot_payload_appended_to_a_jpeg_does_not_survive():
    """A valid JPEG with HTML glued after its end: accepted, but only the pixels come out."""
    data = fx.jpeg_bytes((64, 48)) + fx.html_disguised_as_jpeg()
    result = sanitize_photo(data)
    assert b"<script" not in result.content and b"html" not in result.content.lower()
    assert result.content.endswith(b"\xff\xd9")


def test_mpo_from_a_phone_counts_as_jpeg_and_uses_the_first_picture():
    first = fx.orientation_pattern((160, 120))
    second = Image.new("RGB", (160, 120), (255, 0, 255))
    data = fx.encode(first, "MPO", save_all=True, append_images=[second])
    assert Image.open(io.BytesIO(data)).format == "MPO"
    result = sanitize_photo(data)
    assert result.source_format == "JPEG"
    assert _mean_diff(_open(result), first) < 4


def test_animated_webp_uses_the_first_frame():
    result = sanitize_photo(fx.webp_bytes((320, 240), frames=3))
    assert _mean_diff(_open(result), fx.orientation_pattern((320, 240))) < 4


def test_alpha_is_composited_on_white():
    out = _open(sanitize_photo(fx.png_bytes((320, 240), "RGBA")))
    # bottom-right quadrant fully transparent -> white; top-left red at alpha 128 -> pink
    assert all(c > 245 for c in out.getpixel((300, 220)))
    r, g, b = out.getpixel((20, 20))
    assert r > 245 and 115 < g < 140 and 115 < b < 140
    palette = _open(sanitize_photo(fx.png_bytes((320, 240), "P")))
    assert all(c > 245 for c in palette.getpixel((300, 220)))


def test_sixteen_bit_grey_is_scaled_not_clipped():
    out = _open(sanitize_photo(fx.png_bytes((320, 240), "I;16")))
    top, bottom = out.getpixel((160, 2))[0], out.getpixel((160, 237))[0]
    assert top < 20 and bottom > 235
    assert 100 < out.getpixel((160, 120))[0] < 156


def test_cmyk_jpeg_keeps_its_colours():
    out = _open(sanitize_photo(fx.jpeg_bytes((64, 48), mode="CMYK")))
    r, g, b = out.getpixel((5, 5))
    assert r > 200 and g < 60 and b < 60


# --------------------------------------------------------------------------------------------
# metadata


def _assert_no_metadata(result: SanitizedPhoto) -> None:
    im = _open(result)
    assert len(im.getexif()) == 0
    assert not METADATA_INFO_KEYS & im.info.keys()
    assert im.info.keys() <= JFIF_INFO_KEYS, im.info.keys()
    assert [name for name, _ in im.applist] == ["APP0"]
    markers = _jpeg_markers(result.content)
    assert not [m for m in markers if 0xE1 <= m <= 0xEF or m == 0xFE], markers  # APP1-15, COM


GPS_INPUTS = {
    "jpeg": lambda: fx.jpeg_with_gps(*fx.JAKARTA, orientation=6, all_metadata=True),
    "png": lambda: fx.png_bytes((320, 240), gps=fx.JAKARTA),
    "webp": lambda: fx.webp_bytes((320, 240), gps=fx.JAKARTA),
}


@pytest.mark.parametrize("kind", GPS_INPUTS)
def test_output_carries_no_metadata_pillow_view(kind):
    data = GPS_INPUTS[kind]()
    source = Image.open(io.BytesIO(data))
    source.load()
    assert source.getexif().get_ifd(0x8825), "fixture should carry GPS"
    _assert_no_metadata(sanitize_photo(data))


def test_output_carries_no_metadata_exiftool_view(tmp_path):
    exiftool = shutil.which("exiftool")
    if exiftool is None:
        if os.environ.get("CI") == "true":
            pytest.fail("exiftool is required in CI (apt-get install libimage-exiftool-perl)")
        pytest.skip("exiftool not installed")
    files = []
    for kind, make in GPS_INPUTS.items():
        data = make()
        (tmp_path / f"in-{kind}").write_bytes(data)
        (tmp_path / f"out-{kind}.jpg").write_bytes(sanitize_photo(data).content)
        files += [tmp_path / f"in-{kind}", tmp_path / f"out-{kind}.jpg"]
    done = subprocess.run(
        [exiftool, "-json", "-a", "-u", "-G1", *map(str, files)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    tags = {Path(entry["SourceFile"]).name: entry for entry in json.loads(done.stdout)}
    allowed_groups = {"ExifTool", "System", "File", "JFIF", "Composite"}
    for kind in GPS_INPUTS:
        # the input really carries a location, as exiftool sees it
        assert "GPS:GPSLatitude" in tags[f"in-{kind}"], sorted(tags[f"in-{kind}"])
        out = tags[f"out-{kind}.jpg"]
        groups = {key.split(":", 1)[0] for key in out if ":" in key}
        assert groups <= allowed_groups, sorted(out)
        assert not [key for key in out if "GPS" in key or "Comment" in key], sorted(out)
        assert out["File:EncodingProcess"] == "Baseline DCT, Huffman coding"
        assert "Warning" not in " ".join(out), out


# --------------------------------------------------------------------------------------------
# geometry


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_is_applied(orientation):
    data = fx.jpeg_with_gps(*fx.JAKARTA, size=(160, 120), orientation=orientation)
    expected = ImageOps.exif_transpose(Image.open(io.BytesIO(data)))
    result = sanitize_photo(data)
    out = _open(result)
    swapped = orientation in (5, 6, 7, 8)
    assert (result.width, result.height) == ((120, 160) if swapped else (160, 120))
    assert out.size == expected.size
    assert _mean_diff(out, expected) < 4


@pytest.mark.parametrize("fmt", ["PNG", "WEBP"])
def test_exif_orientation_is_applied_for_png_and_webp(fmt):
    data = fx.encode(fx.orientation_pattern((160, 120)), fmt, exif=fx.gps_exif(0, 0, orientation=6))
    result = sanitize_photo(data)
    assert (result.width, result.height) == (120, 160)
    expected = ImageOps.exif_transpose(Image.open(io.BytesIO(data)))
    assert _mean_diff(_open(result), expected) < 4


def test_portrait_phone_photo_comes_out_upright():
    """Stored landscape 800x600 with Orientation 6 (rotate 90 CW): shown as 600x800, with the
    stored top-left (red) corner now at the top right."""
    result = sanitize_photo(fx.jpeg_with_gps(*fx.JAKARTA, orientation=6))
    assert (result.width, result.height) == (600, 800)
    r, g, b = _open(result).getpixel((590, 10))
    assert r > 200 and g < 60 and b < 60


@pytest.mark.parametrize(
    ("data", "output_max_side", "expected"),
    [
        pytest.param(fx.jpeg_bytes((4000, 1000)), 2560, (2560, 640), id="jpeg-wide-default"),
        pytest.param(fx.png_bytes((1000, 3000), "RGB"), 2560, (853, 2560), id="png-tall-default"),
        pytest.param(fx.jpeg_bytes((2560, 100)), 2560, (2560, 100), id="at-limit-untouched"),
        pytest.param(fx.jpeg_bytes((1000, 800)), 100, (100, 80), id="jpeg-draft-1/8"),
        pytest.param(fx.webp_bytes((320, 240)), 160, (160, 120), id="webp"),
        pytest.param(fx.jpeg_bytes((64, 48)), 2560, (64, 48), id="never-upscaled"),
        pytest.param(fx.jpeg_bytes((5000, 3)), 100, (100, 1), id="sliver-keeps-one-pixel"),
    ],
)
def test_downscale_keeps_aspect_ratio(data, output_max_side, expected):
    result = sanitize_photo(data, PhotoPolicy(output_max_side=output_max_side))
    assert (result.width, result.height) == expected
    assert _open(result).size == expected


@pytest.mark.parametrize(
    ("size", "expected"),
    [
        pytest.param((4000, 3000), (2000, 1500), id="12mp-half-scale-is-the-cap"),
        pytest.param((4032, 3024), (2016, 1512), id="12mp-half-scale-within-2.5-percent-kept"),
        pytest.param((2048, 1536), (2048, 1536), id="citizen-app-upload-not-resampled"),
        pytest.param((4200, 3150), (2000, 1500), id="half-scale-5-percent-over-resampled"),
    ],
)
def test_default_cap_keeps_a_photo_just_above_it(size, expected):
    # issue 19: the default 2000 px cap with libjpeg's draft mode; no resample for 1-2.4 % fewer pixels
    result = sanitize_photo(fx.jpeg_bytes(size))
    assert (result.width, result.height) == expected
    assert _open(result).size == expected


def test_downscale_keeps_the_picture():
    result = sanitize_photo(fx.jpeg_bytes((1000, 800)), PhotoPolicy(output_max_side=100))
    assert _mean_diff(_open(result), fx.orientation_pattern((100, 80))) < 8


def test_downscale_then_orientation():
    data = fx.jpeg_with_gps(*fx.JAKARTA, size=(800, 600), orientation=8)
    result = sanitize_photo(data, PhotoPolicy(output_max_side=400))
    assert (result.width, result.height) == (300, 400)


# --------------------------------------------------------------------------------------------
# contract and hygiene


def test_photo_rejected_contract():
    exc = PhotoRejected("too_large", "photo is too big")
    assert isinstance(exc, ValueError)
    assert (exc.code, exc.message, http_status(exc), exc.field) == (
        "too_large",
        "photo is too big",
        413,
        "photo",
    )
    assert http_status(PhotoRejected("unsupported_type", "x")) == 415
    assert {http_status(PhotoRejected(c, "x")) for c in ("empty", "too_many_pixels", "corrupt")} == {422}
    again = pickle.loads(pickle.dumps(exc))
    assert (again.code, again.message, again.field) == (exc.code, exc.message, exc.field)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_bytes": 0},
        {"max_pixels": -1},
        {"output_max_side": 0},
        {"jpeg_quality": 0},
        {"jpeg_quality": 100},
        {"allowed_formats": frozenset()},
        {"allowed_formats": frozenset({"GIF"})},
    ],
)
def test_policy_validation(kwargs):
    with pytest.raises(ValueError):
        PhotoPolicy(**kwargs)


def test_policy_normalises_format_names():
    policy = PhotoPolicy(allowed_formats=frozenset({"jpeg", "webp"}))
    assert policy.allowed_formats == frozenset({"JPEG", "WEBP"})


def test_truncated_images_are_never_padded(monkeypatch):
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    with pytest.raises(RuntimeError, match="LOAD_TRUNCATED_IMAGES"):
        sanitize_photo(fx.jpeg_bytes())


def test_global_pillow_and_warning_state_is_untouched():
    before = (Image.MAX_IMAGE_PIXELS, ImageFile.LOAD_TRUNCATED_IMAGES, list(warnings.filters))
    for case in NASTY:
        with pytest.raises(PhotoRejected):
            sanitize_photo(case[1]())
    sanitize_photo(fx.realistic_photo_jpeg())
    after = (Image.MAX_IMAGE_PIXELS, ImageFile.LOAD_TRUNCATED_IMAGES, list(warnings.filters))
    assert after == before


def test_thread_safe_and_deterministic():
    inputs = [
        fx.realistic_photo_jpeg(),
        fx.jpeg_with_gps(*fx.JAKARTA, orientation=6),
        fx.png_bytes((640, 480), "RGBA"),
        fx.webp_bytes((640, 480), frames=2),
        fx.truncated_jpeg(),
        fx.decompression_bomb_png(),
    ] * 3

    def run(data: bytes) -> SanitizedPhoto | str:
        try:
            return sanitize_photo(data)
        except PhotoRejected as exc:
            return exc.code

    sequential = [run(data) for data in inputs]
    with ThreadPoolExecutor(max_workers=6) as pool:
        threaded = list(pool.map(run, inputs))
    assert threaded == sequential
    assert sequential[-2:] == ["corrupt", "too_many_pixels"]


def test_realistic_photo_fixture_is_deterministic_and_sized():
    data = fx.realistic_photo_jpeg(target_kb=200, seed=0)
    assert 150 * 1024 <= len(data) <= 300 * 1024
    assert data == fx.realistic_photo_jpeg.__wrapped__(target_kb=200, seed=0)
    assert data != fx.realistic_photo_jpeg(target_kb=200, seed=1)
    result = sanitize_photo(data)
    assert (result.width, result.height) == (1600, 1200)
