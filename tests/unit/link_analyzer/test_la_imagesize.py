"""Image dimensions from headers only (PNG IHDR, JPEG SOF, GIF, WebP) and the pixel cap."""

from __future__ import annotations

import struct
import zlib

import pytest

from link_analyzer.extract.imagesize import ImageSize, Skip, check_image, image_size


def png(w: int, h: int) -> bytes:
    chunk = struct.pack(">I", 13) + b"IHDR" + struct.pack(">IIBBBBB", w, h, 8, 6, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk + struct.pack(">I", zlib.crc32(chunk[4:]))


def jpeg(w: int, h: int, *, sof: int = 0xC0, pad: bool = False) -> bytes:
    app0 = b"\xff\xe0" + struct.pack(">H", 16) + b"JFIF\0\x01\x01\0\0\x01\0\x01\0\0"
    exif = b"\xff\xe1" + struct.pack(">H", 2 + 200) + b"Exif\0\0" + b"\xff" * 194
    dqt = b"\xff\xdb" + struct.pack(">H", 67) + b"\0" * 65
    frame = bytes([0xFF, sof]) + struct.pack(">HBHHB", 17, 8, h, w, 3) + b"\x01\x22\0" * 3
    fill = b"\xff\xff" if pad else b""
    return b"\xff\xd8" + app0 + exif + dqt + fill + frame + b"\xff\xda" + b"\0" * 10


def gif(w: int, h: int, frames: list[tuple[int, int]] = ()) -> bytes:  # type: ignore[assignment]
    out = b"GIF89a" + struct.pack("<HHBBB", w, h, 0x80 | 0x01, 0, 0) + b"\0" * 12
    out += b"\x21\xf9\x04\x00\x00\x00\x00\x00"  # graphic control extension
    for fw, fh in frames:
        out += b"\x2c" + struct.pack("<HHHHB", 0, 0, fw, fh, 0) + b"\x02" + b"\x02\x4c\x01\x00"
    return out + b"\x3b"


def webp_vp8(w: int, h: int) -> bytes:
    frame = b"\x30\x01\x00" + b"\x9d\x01\x2a" + struct.pack("<HH", w, h)
    return b"RIFF" + struct.pack("<I", 4 + 8 + len(frame)) + b"WEBP" + b"VP8 " + b"\0" * 4 + frame


def webp_vp8l(w: int, h: int) -> bytes:
    bits = (w - 1) | ((h - 1) << 14)
    body = b"\x2f" + struct.pack("<I", bits)
    return b"RIFF" + struct.pack("<I", 30) + b"WEBP" + b"VP8L" + struct.pack("<I", 5) + body


def webp_vp8x(w: int, h: int) -> bytes:
    body = b"\x10\0\0\0" + (w - 1).to_bytes(3, "little") + (h - 1).to_bytes(3, "little")
    return b"RIFF" + struct.pack("<I", 30) + b"WEBP" + b"VP8X" + struct.pack("<I", 10) + body


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (png(800, 600), ImageSize("png", 800, 600)),
        (png(50_000, 50_000), ImageSize("png", 50_000, 50_000)),
        (jpeg(4032, 3024), ImageSize("jpeg", 4032, 3024)),
        (jpeg(640, 480, sof=0xC2, pad=True), ImageSize("jpeg", 640, 480)),  # progressive
        (gif(320, 200), ImageSize("gif", 320, 200)),
        # A frame bigger than the logical screen counts.
        (gif(10, 10, [(10, 10), (40_000, 30_000)]), ImageSize("gif", 40_000, 30_000)),
        (webp_vp8(1024, 768), ImageSize("webp", 1024, 768)),
        (webp_vp8l(16383, 2), ImageSize("webp", 16383, 2)),
        (webp_vp8x(100_000, 100_000), ImageSize("webp", 100_000, 100_000)),
    ],
)
def test_sizes_from_headers(data: bytes, expected: ImageSize) -> None:
    assert image_size(data) == expected


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"<html>not an image</html>",
        b"\x89PNG\r\n\x1a\n" + b"\0" * 40,  # no IHDR
        png(10, 10)[:20],  # cut inside IHDR
        b"\xff\xd8\xff\xda" + b"\0" * 20,  # scan before any frame header
        b"\xff\xd8\xff\xe0\x00",  # cut inside a segment length
        b"RIFF\0\0\0\0WEBPVP8 " + b"\0" * 20,  # no start code
        b"GIF89a\x01",
    ],
)
def test_unreadable_headers(data: bytes) -> None:
    assert image_size(data) is None
    assert check_image(data, 10**9)[1] is Skip.UNREADABLE


def test_pixel_cap() -> None:
    cap = 25_000_000
    assert check_image(png(5000, 5000), cap) == (ImageSize("png", 5000, 5000), None)
    size, skip = check_image(png(5000, 5001), cap)
    assert skip is Skip.TOO_MANY_PIXELS and size is not None and size.pixels == 25_005_000
    assert check_image(png(0, 10), cap)[1] is Skip.UNREADABLE
    assert ImageSize("webp", 1, 1).mime_type == "image/webp"
