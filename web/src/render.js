// Pictures on canvases, with the Python app's conventions (deep_emotion/render.py): unsigned maps in inferno from
// 0 to their maximum, signed maps in RdBu_r centred on 0 (red: evidence for the class, blue: against), the map
// bilinear over the face at 55 % opacity, a colour bar with its unit under every map.

let MAPS = null;

export function setColourMaps(maps) {
  MAPS = maps;
}

export function colour(name, t) {
  const lut = MAPS[name];
  const i = Math.max(0, Math.min(255, Math.round(t * 255)));
  return lut[i];
}

/** (vmin, vmax, colour map) as render.map_scale: signed maps symmetric about 0, unsigned from 0. */
export function mapScale(values, signed, limit = null) {
  let top = limit;
  if (top == null) {
    top = 0;
    for (const v of values) top = Math.max(top, signed ? Math.abs(v) : v);
  }
  top = top > 0 ? top : 1;
  return signed ? [-top, top, "RdBu_r"] : [0, top, "inferno"];
}

/** A 48x48 map as an RGBA canvas of its own size (coloured, opaque). */
function mapCanvas(values, size, vmin, vmax, cmap) {
  const c = document.createElement("canvas");
  c.width = c.height = size;
  const ctx = c.getContext("2d");
  const img = ctx.createImageData(size, size);
  for (let i = 0; i < size * size; i++) {
    const [r, g, b] = colour(cmap, vmax > vmin ? (values[i] - vmin) / (vmax - vmin) : 0);
    img.data.set([r, g, b, 255], 4 * i);
  }
  ctx.putImageData(img, 0, 0);
  return c;
}

/** The face (a grey canvas of the square from the photo) with the map over it, drawn into `target`. */
export function drawOverlay(target, face, values, size, scale) {
  const [vmin, vmax, cmap] = scale;
  const ctx = target.getContext("2d");
  ctx.save();
  ctx.filter = "grayscale(1)";
  ctx.drawImage(face, 0, 0, target.width, target.height);
  ctx.restore();
  ctx.globalAlpha = 0.55;
  ctx.imageSmoothingEnabled = true;
  ctx.drawImage(mapCanvas(values, size, vmin, vmax, cmap), 0, 0, target.width, target.height);
  ctx.globalAlpha = 1;
}

/** A horizontal colour bar with its ends and unit, `width` CSS pixels wide. */
export function colourBar(scale, unit, width) {
  const [vmin, vmax, cmap] = scale;
  const wrap = document.createElement("figure");
  wrap.className = "bar";
  const c = document.createElement("canvas");
  c.width = width;
  c.height = 12;
  const ctx = c.getContext("2d");
  for (let x = 0; x < width; x++) {
    const [r, g, b] = colour(cmap, x / (width - 1));
    ctx.fillStyle = `rgb(${r},${g},${b})`;
    ctx.fillRect(x, 0, 1, 12);
  }
  const fmt = (v) => (Math.abs(v) >= 10 ? v.toFixed(0) : Math.abs(v) >= 1 ? v.toFixed(1) : v.toFixed(2));
  const caption = document.createElement("figcaption");
  caption.innerHTML = `<span>${fmt(vmin)}</span><span>${unit}</span><span>${fmt(vmax)}</span>`;
  wrap.append(c, caption);
  return wrap;
}

/** A grey 48x48 picture (Float32 in [0, 1] or uint8) enlarged to `px` pixels, nearest neighbour. */
export function greyCanvas(values, size, px, unit = 1) {
  const small = document.createElement("canvas");
  small.width = small.height = size;
  const sctx = small.getContext("2d");
  const img = sctx.createImageData(size, size);
  for (let i = 0; i < size * size; i++) {
    const v = Math.round(Math.min(1, Math.max(0, values[i] / unit)) * 255);
    img.data.set([v, v, v, 255], 4 * i);
  }
  sctx.putImageData(img, 0, 0);
  const big = document.createElement("canvas");
  big.width = big.height = px;
  const ctx = big.getContext("2d");
  ctx.imageSmoothingEnabled = false;
  ctx.drawImage(small, 0, 0, px, px);
  return big;
}

/** A closed outline through `points` (crop pixels of a `size` square) over a canvas of `px` pixels. */
export function drawOutline(canvas, points, size, colourCss = "#00e5ff") {
  const k = canvas.width / size;
  const ctx = canvas.getContext("2d");
  ctx.strokeStyle = colourCss;
  ctx.lineWidth = Math.max(2, canvas.width / 120);
  ctx.beginPath();
  points.forEach(([x, y], i) => (i ? ctx.lineTo(x * k, y * k) : ctx.moveTo(x * k, y * k)));
  ctx.closePath();
  ctx.stroke();
}

/** The photo with labelled boxes (numbered from 1 unless `numbered` is false), the selected one in yellow, text
 * sized for the width the picture is shown at. */
export function drawBoxes(canvas, photo, faces, labels, selected, shownWidth, numbered = true) {
  if (canvas.width !== photo.width || canvas.height !== photo.height) {
    canvas.width = photo.width;
    canvas.height = photo.height;
  }
  const ctx = canvas.getContext("2d");
  ctx.drawImage(photo, 0, 0);
  const k = photo.width / Math.max(1, shownWidth);
  const line = Math.max(2, Math.round(2 * k));
  ctx.font = `600 ${Math.max(10, Math.round(14 * k))}px system-ui, sans-serif`;
  faces.forEach((f, i) => {
    const [x0, y0, x1, y1] = f.box;
    ctx.strokeStyle = i === selected ? "#ffcc00" : "#00e5ff";
    ctx.lineWidth = line;
    ctx.strokeRect(x0, y0, x1 - x0, y1 - y0);
    const text = numbered ? `${i + 1} ${labels[i] || ""}`.trim() : labels[i] || "";
    const tw = ctx.measureText(text).width + 6 * k;
    const th = Math.round(18 * k);
    const ty = y0 - th >= 0 ? y0 - th : Math.min(y1, photo.height - th);
    ctx.fillStyle = i === selected ? "#ffcc00" : "#00e5ff";
    ctx.fillRect(x0 - line / 2, ty, tw, th);
    ctx.fillStyle = "#000";
    ctx.fillText(text, x0 + 3 * k, ty + th - 4 * k);
  });
}
