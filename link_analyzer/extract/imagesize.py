"""Image dimensions from the header bytes alone (PNG IHDR, JPEG SOF, GIF, WebP), no decoding.

An image is checked before it goes to the model: one whose decoded size would exceed the pixel
cap (a small file can decode to gigabytes: a "decompression bomb") or whose header cannot be read
is left out. Nothing here decodes pixels; the cost is a few slices of the first bytes (JPEG: a
walk over the segment headers up to the frame header).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import StrEnum

MIME = {
    "png": "image/png",
    "jpeg": "image/jpeg",
    "gif": "image/gif",
    "webp": "image/webp",
}

# JPEG start-of-frame markers (baseline, progressive, lossless, arithmetic...); not DHT (C4),
# JPG (C8) or DAC (CC).
_SOF = frozenset({0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF})
# Markers that stand alone (no length field).
_STANDALONE = frozenset({0x01, *range(0xD0, 0xD9)})
_MAX_GIF_BLOCKS = 10_000


@dataclass(frozen=True)
class ImageSize:
    format: str
    width: int
    height: int

    @property
    def pixels(self) -> int:
        return self.width * self.height

    @property
    def mime_type(self) -> str:
        return MIME[self.format]


class Skip(StrEnum):
    TOO_MANY_PIXELS = "too-many-pixels"
    UNREADABLE = "unreadable"


def image_size(data: bytes) -> ImageSize | None:
    """The format and dimensions, or None when the header is not one we can read."""
    try:
        if data.startswith(b"\x89PNG\r\n\x1a\n"):
            return _png(data)
        if data.startswith(b"\xff\xd8"):
            return _jpeg(data)
        if data[:6] in (b"GIF87a", b"GIF89a"):
            return _gif(data)
        if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
            return _webp(data)
    except (struct.error, IndexError):
        return None
    return None


def check_image(data: bytes, max_pixels: int) -> tuple[ImageSize | None, Skip | None]:
    """(size, None) when the image may be sent; (size or None, reason) when it is left out."""
    size = image_size(data)
    if size is None or size.width <= 0 or size.height <= 0:
        return size, Skip.UNREADABLE
    if size.pixels > max_pixels:
        return size, Skip.TOO_MANY_PIXELS
    return size, None


def _png(data: bytes) -> ImageSize | None:
    # The first chunk must be IHDR: length 13, then width and height (big-endian).
    length, kind = struct.unpack_from(">I4s", data, 8)
    if kind != b"IHDR" or length != 13:
        return None
    width, height = struct.unpack_from(">II", data, 16)
    return ImageSize("png", width, height)


def _jpeg(data: bytes) -> ImageSize | None:
    i = 2
    n = len(data)
    while i < n:
        if data[i] != 0xFF:
            return None  # not at a marker: corrupt
        while i < n and data[i] == 0xFF:  # fill bytes
            i += 1
        if i >= n:
            return None
        marker = data[i]
        i += 1
        if marker in _STANDALONE:
            continue
        if marker in (0xD9, 0xDA):  # end of image, or start of scan before any frame header
            return None
        (length,) = struct.unpack_from(">H", data, i)
        if length < 2:
            return None
        if marker in _SOF:
            height, width = struct.unpack_from(">HH", data, i + 3)
            return ImageSize("jpeg", width, height)
        i += length
    return None


def _gif(data: bytes) -> ImageSize | None:
    # The logical screen, and every frame in the part we have (a frame may claim more).
    width, height, flags = struct.unpack_from("<HHB", data, 6)
    i = 13
    if flags & 0x80:
        i += 3 * (2 ** ((flags & 0x07) + 1))
    n = len(data)
    for _ in range(_MAX_GIF_BLOCKS):
        if i >= n:
            break
        block = data[i]
        if block == 0x3B:  # trailer
            break
        if block == 0x21:  # extension: label, then sub-blocks
            i += 2
            i = _skip_sub_blocks(data, i)
        elif block == 0x2C:  # image descriptor
            _left, _top, w, h, fflags = struct.unpack_from("<HHHHB", data, i + 1)
            width, height = max(width, w), max(height, h)
            i += 10
            if fflags & 0x80:
                i += 3 * (2 ** ((fflags & 0x07) + 1))
            i += 1  # LZW minimum code size
            i = _skip_sub_blocks(data, i)
        else:
            break
    return ImageSize("gif", width, height)


def _skip_sub_blocks(data: bytes, i: int) -> int:
    n = len(data)
    while i < n:
        size = data[i]
        i += 1 + size
        if size == 0:
            break
    return i


def _webp(data: bytes) -> ImageSize | None:
    chunk = data[12:16]
    if chunk == b"VP8 ":
        # Lossy: a 3-byte frame tag, the start code, then 14-bit width and height.
        if data[23:26] != b"\x9d\x01\x2a":
            return None
        w, h = struct.unpack_from("<HH", data, 26)
        return ImageSize("webp", w & 0x3FFF, h & 0x3FFF)
    if chunk == b"VP8L":
        # Lossless: signature 0x2F, then width-1 and height-1 in 14 bits each.
        if data[20] != 0x2F:
            return None
        (bits,) = struct.unpack_from("<I", data, 21)
        return ImageSize("webp", (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1)
    if chunk == b"VP8X":
        # Extended: the canvas, 24-bit width-1 and height-1.
        w = int.from_bytes(data[24:27], "little") + 1
        h = int.from_bytes(data[27:30], "little") + 1
        return ImageSize("webp", w, h)
    return None
