// Reading a photo safely in the browser: the declared size is read from the file's header and refused before
// anything is decoded when it is too large (as deep_emotion/images.py does), then the picture is decoded into a
// canvas no larger than the detector works on.

export const MAX_BYTES = 50 * 1024 * 1024;
export const MAX_PIXELS = 64_000_000;

const u16 = (b, i, little = false) => (little ? b[i] | (b[i + 1] << 8) : (b[i] << 8) | b[i + 1]);
const u32 = (b, i, little = false) => (little ? (u16(b, i, true) | (u16(b, i + 2, true) << 16)) >>> 0 : ((u16(b, i) << 16) | u16(b, i + 2)) >>> 0);

/** {width, height} declared in a PNG, JPEG, GIF, WebP or BMP header; null when the format is not recognised. */
export function declaredSize(bytes) {
  const b = bytes;
  if (b.length >= 24 && b[0] === 0x89 && b[1] === 0x50 && b[2] === 0x4e && b[3] === 0x47) return { width: u32(b, 16), height: u32(b, 20) };
  if (b.length >= 10 && b[0] === 0x47 && b[1] === 0x49 && b[2] === 0x46) return { width: u16(b, 6, true), height: u16(b, 8, true) };
  if (b.length >= 26 && b[0] === 0x42 && b[1] === 0x4d) return { width: Math.abs(u32(b, 18, true) | 0), height: Math.abs(u32(b, 22, true) | 0) };
  if (b.length >= 30 && String.fromCharCode(...b.slice(0, 4)) === "RIFF" && String.fromCharCode(...b.slice(8, 12)) === "WEBP") {
    const kind = String.fromCharCode(...b.slice(12, 16));
    if (kind === "VP8X") return { width: 1 + (b[24] | (b[25] << 8) | (b[26] << 16)), height: 1 + (b[27] | (b[28] << 8) | (b[29] << 16)) };
    if (kind === "VP8L") { const v = u32(b, 21, true); return { width: 1 + (v & 0x3fff), height: 1 + ((v >> 14) & 0x3fff) }; }
    if (kind === "VP8 ") return { width: u16(b, 26, true) & 0x3fff, height: u16(b, 28, true) & 0x3fff };
  }
  if (b.length >= 4 && b[0] === 0xff && b[1] === 0xd8) {
    let i = 2;
    while (i + 9 < b.length) {
      if (b[i] !== 0xff) { i++; continue; }
      const marker = b[i + 1];
      if (marker === 0xd8 || marker === 0x01 || (marker >= 0xd0 && marker <= 0xd7)) { i += 2; continue; }
      const len = u16(b, i + 2);
      if ((marker >= 0xc0 && marker <= 0xcf) && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc) {
        return { height: u16(b, i + 5), width: u16(b, i + 7) };
      }
      i += 2 + len;
    }
  }
  return null;
}

/** The file as a canvas whose longer side is at most `maxSide` (the detection copy), and its original size.
 * Throws an Error with a sentence for the user when the file cannot or should not be read. */
export async function readPhoto(file, maxSide) {
  const name = file.name || "the file";
  if (!file.size) throw new Error(`${name}: the file is empty.`);
  if (file.size > MAX_BYTES) throw new Error(`${name}: the file is larger than ${MAX_BYTES / 2 ** 20} MB.`);
  const head = new Uint8Array(await file.slice(0, 256 * 1024).arrayBuffer());
  const size = declaredSize(head);
  if (size && size.width * size.height > MAX_PIXELS) {
    throw new Error(`${name}: ${size.width}x${size.height} pixels is more than the ${MAX_PIXELS / 1e6} megapixels accepted.`);
  }
  if (size && (!size.width || !size.height)) throw new Error(`${name}: the image has no pixels.`);
  let bitmap;
  try {
    bitmap = await createImageBitmap(file);
  } catch {
    throw new Error(`${name}: not a readable image (JPEG, PNG, WebP, GIF or BMP).`);
  }
  const scale = Math.min(1, maxSide / Math.max(bitmap.width, bitmap.height));
  const canvas = document.createElement("canvas");
  canvas.width = Math.max(1, Math.round(bitmap.width * scale));
  canvas.height = Math.max(1, Math.round(bitmap.height * scale));
  const ctx = canvas.getContext("2d", { willReadFrequently: true });
  ctx.fillStyle = "#fff"; // transparent pixels count as white, as the Python pipeline flattens alpha on white
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  ctx.imageSmoothingQuality = "high";
  ctx.drawImage(bitmap, 0, 0, canvas.width, canvas.height);
  const original = { width: bitmap.width, height: bitmap.height };
  bitmap.close();
  return { canvas, original, scale };
}
