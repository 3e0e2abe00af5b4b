"""A corpus of awkward and broken images, generated here (never downloaded, never data-set images).

`unusable()`: bytes that must be refused with ImageLoadError; `usable()`: odd but valid images that must
load as upright RGB.
"""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
from PIL import Image


def _png(im: Image.Image, **kw) -> bytes:
    b = io.BytesIO()
    im.save(b, format="PNG", **kw)
    return b.getvalue()


def _jpeg(im: Image.Image, **kw) -> bytes:
    b = io.BytesIO()
    im.save(b, format="JPEG", **kw)
    return b.getvalue()


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_bomb(width: int = 50_000, height: int = 50_000) -> bytes:
    """A tiny PNG whose header declares width x height grey pixels (a decompression bomb)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 1024)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")


def photo(w: int = 96, h: int = 64, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), "RGB")


def unusable() -> dict[str, bytes]:
    jpg, png = _jpeg(photo(200, 150)), _png(photo(200, 150))
    webp = io.BytesIO()
    photo().save(webp, format="WEBP")
    tiff = io.BytesIO()
    photo().save(tiff, format="TIFF")
    bad_crc = bytearray(png)
    bad_crc[29] ^= 0xFF  # inside IHDR's CRC
    return {
        "zero_bytes.jpg": b"",
        "truncated.jpg": jpg[: len(jpg) // 2],
        "truncated.png": png[: len(png) // 2],
        "header_only.png": png[:33],
        "text_named.jpg": b"hello, this is a text file\n" * 20,
        "pdf_named.jpg": b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << >>\n%%EOF\n",
        "html_named.png": b"<!doctype html><html><body><img src=x onerror=alert(1)></body></html>",
        "svg_named.png": b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>',
        "bomb.png": png_bomb(),
        "bomb_wide.png": png_bomb(200_000, 400),
        "garbage.bin": bytes(np.random.default_rng(1).integers(0, 256, 4096, dtype=np.uint8)),
        "nul_bytes.jpg": b"\x00" * 5000,
        "soi_only.jpg": b"\xff\xd8",
        "jpeg_no_eoi_mid.jpg": jpg[:200],
        "gif_header_only.gif": b"GIF89a\x10\x00\x10\x00",
        "bmp_bad_header.bmp": b"BM" + b"\xff" * 60,
        "tiff_header_only.tif": tiff.getvalue()[:8],
        "webp_truncated.webp": webp.getvalue()[:40],
        "bad_crc.png": bytes(bad_crc),
        "zip_named.png": b"PK\x03\x04" + b"\x00" * 100,
        "ico_garbage.ico": b"\x00\x00\x01\x00\x01\x00" + b"\x00" * 30,
    }


def usable() -> dict[str, bytes]:
    out = {}
    out["tiny_1x1.png"] = _png(Image.new("RGB", (1, 1), (10, 20, 30)))
    out["strip_10x1000.png"] = _png(photo(10, 1000))
    grey16 = Image.fromarray((np.linspace(0, 65535, 64 * 64).reshape(64, 64)).astype(np.uint16))
    out["grey16.png"] = _png(grey16)
    out["cmyk.jpg"] = _jpeg(photo().convert("CMYK"))
    rgba = photo().convert("RGBA")
    rgba.putalpha(Image.new("L", rgba.size, 0))
    out["rgba_transparent.png"] = _png(rgba)
    la = Image.new("LA", (40, 40), (120, 0))
    out["la_transparent.png"] = _png(la)
    pal = photo().convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    out["palette_transparent.png"] = _png(pal, transparency=0)
    frames = [Image.new("RGB", (50, 40), c) for c in ((255, 0, 0), (0, 255, 0), (0, 0, 255))]
    gif = io.BytesIO()
    frames[0].save(gif, format="GIF", save_all=True, append_images=frames[1:], duration=50, loop=0)
    out["animated.gif"] = gif.getvalue()
    webp = io.BytesIO()
    frames[0].save(webp, format="WEBP", save_all=True, append_images=frames[1:], duration=50)
    out["animated.webp"] = webp.getvalue()
    tiff = io.BytesIO()
    frames[0].save(tiff, format="TIFF", save_all=True, append_images=frames[1:])
    out["multipage.tiff"] = tiff.getvalue()
    out["exif_rotated.jpg"] = exif_rotated()
    out["bilevel.png"] = _png(Image.new("1", (30, 30), 1))
    out["float32.tiff"] = _tiff(Image.fromarray(np.linspace(-1, 3, 900, dtype=np.float32).reshape(30, 30), "F"))
    return out


def _tiff(im: Image.Image) -> bytes:
    b = io.BytesIO()
    im.save(b, format="TIFF")
    return b.getvalue()


def exif_rotated() -> bytes:
    """A 120x60 landscape photo stored with EXIF orientation 6 (rotate 90° clockwise to view): upright it is
    60 wide and 120 tall, red on top."""
    stored = Image.new("RGB", (120, 60), (0, 0, 255))
    stored.paste((255, 0, 0), (0, 0, 60, 60))  # left half red: after a 90° clockwise turn, the top
    exif = Image.Exif()
    exif[0x0112] = 6
    return _jpeg(stored, exif=exif.tobytes())
