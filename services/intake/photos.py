"""Photo sanitising for citizen reports: identify, bound, decode, strip, re-encode.

`sanitize_photo(data)` turns untrusted upload bytes into a fresh baseline JPEG that carries no
metadata at all (no EXIF, GPS, XMP, ICC profile or comment), or raises `PhotoRejected` with a
machine-readable code, an English message and the HTTP status the API should answer.

The order of the checks is the point:

1. byte size, before anything is parsed;
2. file type, from the bytes (Pillow's header parsers, restricted to the allowed formats); a
   filename or a declared content type is never consulted because it is never passed in;
3. width, height and pixel count, from the header, before any pixel is decoded: first from our
   own read of the JPEG SOF / PNG IHDR / WebP RIFF header, before Pillow even opens the file
   (libwebp reserves the whole canvas inside `Image.open`), then again from what Pillow parsed;
4. decoding of the first frame only, JPEGs at a reduced DCT scale when the output is smaller;
5. conversion to RGB (alpha composited on white, 16-bit scaled down), downscale, EXIF orientation;
6. encoding of a new image object, so nothing from the source can ride along.

Pure and thread-safe: no I/O, no eventlet, and no change to Pillow's global settings or the
`warnings` filters (the service runs this in `eventlet.tpool` worker threads). Pillow's own
decompression-bomb guard stays in place as a second line behind ours.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

from PIL import (
    ExifTags,
    Image,
    ImageFile,
    JpegImagePlugin,
    MpoImagePlugin,
    PngImagePlugin,
    UnidentifiedImageError,
    WebPImagePlugin,
)

from services.intake.evidence import Capture, dhash, read_capture

__all__ = [
    "CORRUPT",
    "DEFAULT_POLICY",
    "EMPTY",
    "TOO_LARGE",
    "TOO_MANY_PIXELS",
    "UNSUPPORTED_TYPE",
    "PhotoPolicy",
    "PhotoRejected",
    "SanitizedPhoto",
    "sanitize_photo",
]

EMPTY = "empty"
TOO_LARGE = "too_large"
UNSUPPORTED_TYPE = "unsupported_type"
TOO_MANY_PIXELS = "too_many_pixels"
CORRUPT = "corrupt"


#: The formats this module knows how to take apart safely, with their names for people.
_SUPPORTED_FORMATS = {"JPEG": "JPEG", "PNG": "PNG", "WEBP": "WebP"}

#: A progressive JPEG is decoded scan by scan and every scan walks the whole coefficient buffer,
#: so a small file with thousands of scans costs minutes of CPU. Real encoders use about 10.
_MAX_JPEG_SCANS = 250

#: Same table as `PIL.ImageOps.exif_transpose`, applied to the already-downscaled image.
_ORIENTATION_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}

_WHITE = (255, 255, 255)

#: A photo decoded (at full or at a reduced draft scale) at most 2.5 % over the target keeps its size: resampling
#: costs more than those pixels are worth. The citizen app uploads 2048 px photos, and a 12 MP 4032x3024 original
#: decodes at ½ scale to 2016x1512; resampling that to 2000x1500 cost ~30 ms of CPU, half the whole photo (issue 19).
#: So the stored side may be up to 2.5 % over the cap (2050 px for 2000).
_SLACK = 1.025

#: Imported for their side effect: the formats get registered now, in the importing thread,
#: rather than lazily inside Image.open() on whichever worker thread comes first.
_PLUGINS = (JpegImagePlugin, MpoImagePlugin, PngImagePlugin, WebPImagePlugin)


@dataclass(frozen=True)
class PhotoPolicy:
    max_bytes: int = 10 * 1024 * 1024  # encoded size
    max_pixels: int = 40_000_000  # width*height, checked from the header BEFORE decoding
    max_side: int = 12_000  # either dimension, checked before decoding
    # Longer side after re-encoding (downscale only; up to 2.5 % more is kept as it is, see _SLACK: the citizen
    # app's 2048 px uploads are not resampled). A report photo is shown fitted to a phone or to the
    # workbench's column (at most 72rem, 1,152 CSS px): 2000 px still leaves a pothole's or a drain's detail when
    # zoomed, and it is the ½ scale of a 12 MP phone original (4000x3000), so libjpeg's draft mode decodes those at
    # ½ scale instead of full size (docs/performance.md, "Photos").
    output_max_side: int = 2000
    # Optimal Huffman tables make a file ~20 % smaller but double the encoding CPU (~5-9 ms a photo, a third of the
    # whole re-encode): off. Quality 80 instead of 85 wins the bytes back at no CPU cost (a 1600x1200 photo: 223 KB
    # at 85 optimised, 242 KB at 80 without), and for a photo that shows a pothole or a blocked drain on a phone or
    # the workbench the difference between 80 and 85 is not visible (docs/performance.md, "Photos").
    jpeg_quality: int = 80
    jpeg_optimize: bool = False
    allowed_formats: frozenset[str] = frozenset({"JPEG", "PNG", "WEBP"})

    def __post_init__(self) -> None:
        for name in ("max_bytes", "max_pixels", "max_side", "output_max_side"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"PhotoPolicy.{name} must be a positive integer, not {value!r}")
        if not 1 <= self.jpeg_quality <= 95:
            raise ValueError(f"PhotoPolicy.jpeg_quality must be 1-95, not {self.jpeg_quality!r}")
        formats = frozenset(str(f).upper() for f in self.allowed_formats)
        unknown = formats - _SUPPORTED_FORMATS.keys()
        if not formats or unknown:
            raise ValueError(
                "PhotoPolicy.allowed_formats must be a non-empty subset of "
                f"{sorted(_SUPPORTED_FORMATS)}, not {sorted(self.allowed_formats)}"
            )
        object.__setattr__(self, "allowed_formats", formats)


DEFAULT_POLICY = PhotoPolicy()


@dataclass(frozen=True)
class SanitizedPhoto:
    content: bytes  # re-encoded JPEG, no metadata at all
    content_type: str  # "image/jpeg"
    width: int
    height: int
    source_format: str  # what the bytes really were: JPEG/PNG/WEBP
    #: the perceptual hash of the clean image (services/intake/evidence.py): no metadata, kept with the photo
    phash: str = ""
    #: where and when the source said it was taken, read before stripping; for the evidence check only, never stored
    capture: Capture | None = None


class PhotoRejected(ValueError):
    """An upload that is not an acceptable photo.

    `code` is one of empty, too_large, unsupported_type, too_many_pixels, corrupt; `message` an
    English sentence for the client; `field` the request field at fault. The HTTP status answering
    each code is the gateway's (services/intake/http_errors.py).
    """

    field = "photo"

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def __reduce__(self):  # picklable despite the two-argument constructor
        return (type(self), (self.code, self.message))

    def __repr__(self) -> str:
        return f"PhotoRejected(code={self.code!r}, message={self.message!r})"


def sanitize_photo(data: bytes, policy: PhotoPolicy = DEFAULT_POLICY) -> SanitizedPhoto:
    """Check `data` against `policy` and re-encode it as a metadata-free baseline JPEG.

    Raises `PhotoRejected` for any unacceptable input. CPU-heavy (about 20 ms for a 2-megapixel
    JPEG, 250 ms for a 12-megapixel one on one core) but releases the GIL while decoding,
    resizing and encoding: call it from a worker thread (`eventlet.tpool`), never on the hub.
    """
    if ImageFile.LOAD_TRUNCATED_IMAGES:
        # Some code in this process switched Pillow to padding truncated files with grey; this
        # module cannot then tell a truncated upload from a whole one. Refuse to run at all.
        raise RuntimeError(
            "PIL.ImageFile.LOAD_TRUNCATED_IMAGES is enabled in this process; "
            "photo sanitising needs it False to reject truncated uploads"
        )
    if isinstance(data, (bytearray, memoryview)):
        data = bytes(data)
    elif not isinstance(data, bytes):
        raise TypeError(f"sanitize_photo() needs bytes, not {type(data).__name__}")

    size = len(data)
    if size == 0:
        raise PhotoRejected(EMPTY, "photo is empty (0 bytes)")
    if size > policy.max_bytes:
        raise PhotoRejected(
            TOO_LARGE,
            f"photo is {size} bytes, over the limit of {policy.max_bytes} bytes ({_human_bytes(policy.max_bytes)})",
        )

    sniffed = _sniff(data)
    if sniffed in policy.allowed_formats:
        # Our own read of the header first: exact messages, and nothing allocated for a bomb
        # (libwebp reserves its whole canvas inside Image.open, before any check of ours).
        for width, height in _header_sizes(data, sniffed):
            _check_dimensions(width, height, policy)
        if sniffed == "JPEG" and data.count(b"\xff\xda") > _MAX_JPEG_SCANS:
            raise PhotoRejected(
                CORRUPT,
                f"photo is a JPEG with more than {_MAX_JPEG_SCANS} scans; it cannot be decoded",
            )

    try:
        im = Image.open(io.BytesIO(data), formats=sorted(policy.allowed_formats))
    except UnidentifiedImageError as exc:
        if sniffed in policy.allowed_formats:
            raise PhotoRejected(
                CORRUPT, f"photo looks like a {_label(sniffed)} image but its header is invalid"
            ) from exc
        raise PhotoRejected(UNSUPPORTED_TYPE, _unsupported_message(sniffed, policy)) from exc
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        # Pillow's own guard (warnings only become exceptions if the process asked for that).
        raise PhotoRejected(
            TOO_MANY_PIXELS,
            "photo declares far more pixels than can be processed safely; the limit is "
            f"{_megapixels(policy.max_pixels)}",
        ) from exc
    except MemoryError:
        raise
    except Exception as exc:  # a header parser choking on hostile bytes
        raise PhotoRejected(CORRUPT, _corrupt_message(sniffed)) from exc

    with im:
        return _sanitize_opened(im, policy)


# --------------------------------------------------------------------------------------------
# the pipeline after a successful open


def _sanitize_opened(im: ImageFile.ImageFile, policy: PhotoPolicy) -> SanitizedPhoto:
    # MPO is the multi-picture JPEG phones write (e.g. with a depth map): a JPEG all the same.
    source_format = "JPEG" if im.format == "MPO" else str(im.format)
    if source_format not in policy.allowed_formats:  # unreachable with `formats=` above
        raise PhotoRejected(UNSUPPORTED_TYPE, _unsupported_message(source_format, policy))

    width, height = im.size
    _check_dimensions(width, height, policy)
    target = _fit(width, height, policy.output_max_side)
    capture = read_capture(im)  # before the metadata goes: the evidence check's distance and time

    try:
        if source_format == "JPEG" and target != (width, height):
            # Let libjpeg decode at 1/2, 1/4 or 1/8 scale, never below the target size.
            im.draft(None, target)
        im.load()  # first frame only: nothing ever seeks further
        orientation = _orientation(im)
        rgb = _to_rgb(im)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise PhotoRejected(
            TOO_MANY_PIXELS,
            f"photo has too many pixels; the limit is {_megapixels(policy.max_pixels)}",
        ) from exc
    except MemoryError:
        raise
    except Exception as exc:  # truncated data, bad checksums, decoder errors
        raise PhotoRejected(CORRUPT, _corrupt_message(source_format)) from exc

    if max(rgb.size) <= max(target) * _SLACK:
        target = rgb.size  # decoded (at full or reduced scale) just above the cap: keep it (see _SLACK)
    if rgb.size != target:
        # Bicubic (antialiased when shrinking, like every Pillow filter but NEAREST): a third
        # faster than Lanczos for the usual 1.5x phone-photo reduction, no visible difference.
        rgb = rgb.resize(target, Image.Resampling.BICUBIC, reducing_gap=3.0)
    method = _ORIENTATION_TRANSPOSE.get(orientation)
    if method is not None:
        rgb = rgb.transpose(method)

    # A brand-new image object over the same pixels: no `info` (comment, exif, icc_profile, xmp, dpi) and nothing
    # of the opened file (its APP segments, an `encoderinfo`) can be inherited. Pasting into a new image did the
    # same at the cost of a copy of every pixel (0.5-1 ms a photo, issue 19); `_new` is how Pillow's own
    # operations wrap their results, and the encoder reads only the image's `info` and what `save` is given.
    clean = rgb._new(rgb.im)
    clean.info = {}
    out = io.BytesIO()
    clean.save(
        out,
        format="JPEG",
        quality=policy.jpeg_quality,
        optimize=policy.jpeg_optimize,  # baseline (SOF0) either way
        progressive=False,
        exif=b"",
        comment=b"",
    )
    return SanitizedPhoto(
        content=out.getvalue(),
        content_type="image/jpeg",
        width=clean.width,
        height=clean.height,
        source_format=source_format,
        phash=dhash(clean),
        capture=capture,
    )


def _check_dimensions(width: int, height: int, policy: PhotoPolicy) -> None:
    if width < 1 or height < 1:
        raise PhotoRejected(CORRUPT, f"photo declares an impossible size of {width}x{height} pixels")
    if width > policy.max_side or height > policy.max_side:
        raise PhotoRejected(
            TOO_MANY_PIXELS,
            f"photo is {width}x{height} pixels; neither side may exceed {policy.max_side} pixels",
        )
    if width * height > policy.max_pixels:
        raise PhotoRejected(
            TOO_MANY_PIXELS,
            f"photo is {width}x{height} pixels ({_megapixels(width * height)}); "
            f"the limit is {_megapixels(policy.max_pixels)}",
        )


def _fit(width: int, height: int, max_side: int) -> tuple[int, int]:
    longest = max(width, height)
    if longest <= max_side:
        return width, height
    scale = max_side / longest
    return (
        max(1, min(max_side, round(width * scale))),
        max(1, min(max_side, round(height * scale))),
    )


def _orientation(im: Image.Image) -> int:
    """The EXIF Orientation (1-8); 1 when absent or unreadable (broken EXIF is not our problem,
    it is discarded anyway)."""
    try:
        value = im.getexif().get(ExifTags.Base.Orientation, 1)
    except Exception:
        return 1
    return value if isinstance(value, int) and value in _ORIENTATION_TRANSPOSE else 1


def _to_rgb(im: Image.Image) -> Image.Image:
    mode = im.mode
    if mode.startswith("I;16") or mode == "I":
        # 16-bit greyscale: Pillow's convert() clips at 255 (a white picture); scale instead.
        im = im.convert("I").point(lambda v: v * (1 / 256)).convert("L")
        mode = "L"
    if mode == "P":
        im = im.convert("RGBA" if "transparency" in im.info else "RGB")
    elif mode in ("PA", "LA", "La", "RGBa") or (mode in ("L", "RGB") and "transparency" in im.info):
        im = im.convert("RGBA")
    if im.mode == "RGBA":
        background = Image.new("RGB", im.size, _WHITE)
        background.paste(im, mask=im.getchannel("A"))
        return background
    if im.mode != "RGB":
        im = im.convert("RGB")  # 1, L, CMYK (Adobe-inverted handled by the decoder), YCbCr...
    return im


# --------------------------------------------------------------------------------------------
# identification from the bytes


def _sniff(data: bytes) -> str:
    """A name for what `data` really is, for messages and for telling a broken JPEG/PNG/WebP
    (corrupt) from some other type (unsupported). Pillow still decides what is readable."""
    head = data[:64]
    if head.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if head.startswith(b"RIFF") and head[8:12] == b"WEBP":
        return "WEBP"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "GIF"
    if head.startswith((b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")):
        return "TIFF"
    if head.startswith(b"BM") and head[6:10] == b"\x00\x00\x00\x00":
        return "BMP"
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        if brand in (b"avif", b"avis"):
            return "AVIF"
        if brand in (b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"mif1", b"msf1"):
            return "HEIC"
        return "video (MP4/QuickTime)"
    if head.startswith((b"\x00\x00\x00\x0cjP  ", b"\xff\x4f\xff\x51")):
        return "JPEG 2000"
    if head.startswith(b"%PDF-"):
        return "PDF"
    if head.startswith(b"8BPS"):
        return "Photoshop PSD"
    if head.startswith(b"\x00\x00\x01\x00"):
        return "ICO"
    if head.startswith(b"PK\x03\x04"):
        return "ZIP archive"
    return _sniff_text(data[:1024])


def _sniff_text(sample: bytes) -> str:
    if b"\x00" in sample:
        return "unknown binary data"
    try:
        text = sample.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(sample) - 3:  # not just a multi-byte character cut at the end
            return "unknown binary data"
        text = sample[: exc.start].decode("utf-8")
    text = text.lstrip("\ufeff \t\r\n").lower()
    if "<svg" in text:
        return "SVG"
    if text.startswith(("<!doctype html", "<html", "<head", "<body", "<script")) or any(
        tag in text for tag in ("<html", "<script", "<body", "<iframe")
    ):
        return "HTML"
    if text.startswith("<"):
        return "XML"
    return "text"


_JPEG_SOF_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}  # not DHT, JPG, DAC


def _header_sizes(data: bytes, fmt: str) -> list[tuple[int, int]]:
    """The (width, height) pairs the header declares, read without Pillow; empty if the header
    is not laid out as expected (Pillow's parser, then its bomb guard, decide those)."""
    if fmt == "PNG":
        if data[12:16] == b"IHDR" and len(data) >= 24:
            return [(int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big"))]
        return []
    if fmt == "WEBP":
        size = _webp_canvas_size(data)
        return [size] if size else []
    if fmt == "JPEG":
        return _jpeg_frame_sizes(data)
    return []


def _jpeg_frame_sizes(data: bytes) -> list[tuple[int, int]]:
    """Sizes from the SOF segments before the first scan (there is normally exactly one)."""
    sizes = []
    i, end = 2, len(data)
    while i + 4 <= end:
        if data[i] != 0xFF:
            break  # not at a marker: leave it to Pillow
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in (0x01, 0xD8) or 0xD0 <= marker <= 0xD7:  # markers without a length
            i += 2
            continue
        if marker in (0xDA, 0xD9):  # start of scan, end of image
            break
        length = int.from_bytes(data[i + 2 : i + 4], "big")
        if marker in _JPEG_SOF_MARKERS and length >= 7 and i + 9 <= end:
            height = int.from_bytes(data[i + 5 : i + 7], "big")
            width = int.from_bytes(data[i + 7 : i + 9], "big")
            sizes.append((width, height))
        i += 2 + length
    return sizes


def _webp_canvas_size(data: bytes) -> tuple[int, int] | None:
    """Canvas size from a WebP header (VP8X, VP8 or VP8L first chunk), or None if unreadable."""
    chunk = data[12:16]
    if chunk == b"VP8X" and len(data) >= 30:
        return (
            int.from_bytes(data[24:27], "little") + 1,
            int.from_bytes(data[27:30], "little") + 1,
        )
    if chunk == b"VP8 " and len(data) >= 30 and data[23:26] == b"\x9d\x01\x2a":
        return (
            int.from_bytes(data[26:28], "little") & 0x3FFF,
            int.from_bytes(data[28:30], "little") & 0x3FFF,
        )
    if chunk == b"VP8L" and len(data) >= 25 and data[20] == 0x2F:
        bits = int.from_bytes(data[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    return None


# --------------------------------------------------------------------------------------------
# messages


def _label(fmt: str) -> str:
    return _SUPPORTED_FORMATS.get(fmt, fmt)


def _unsupported_message(detected: str, policy: PhotoPolicy) -> str:
    names = [_label(f) for f in _SUPPORTED_FORMATS if f in policy.allowed_formats]
    expected = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]
    return f"photo is not a {expected} image (detected: {_label(detected)})"


def _corrupt_message(fmt: str) -> str:
    if fmt in _SUPPORTED_FORMATS:
        return f"photo could not be decoded: the {_label(fmt)} data is truncated or corrupt"
    return "photo could not be decoded: the image data is truncated or corrupt"


def _human_bytes(n: int) -> str:
    if n >= 1024 * 1024:
        return f"{n / (1024 * 1024):.1f} MB"
    if n >= 1024:
        return f"{n / 1024:.1f} KB"
    return f"{n} bytes"


def _megapixels(pixels: int) -> str:
    return f"{pixels / 1_000_000:.1f} megapixels"
