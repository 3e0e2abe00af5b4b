// Convolutional layers as WebAssembly SIMD kernels (AssemblyScript, compiled by `web/build.py` with asc from
// web/node_modules), for the page's workers: the paper network's occlusion-map parts (web/src/paper-net.js) and
// MTCNN's three networks (web/src/mtcnn-net.js) run on them. ONNX Runtime Web ran the paper network's 8- and
// 10-channel convolutions at ~9 billion multiply-adds a second on one core; blocked as two output channels x 16
// pixels (eight accumulators in registers) they run at ~21 in node, 14-20 in Chromium (docs/performance.md,
// "In the browser"). Every function
// works on a batch of `n` images laid out one after another, `*Img` floats apart; pointers are in bytes.
//
// Layout: a feature map is C planes, each `plane` floats apart, of rows `W` floats long. A convolution reads its
// input as one flat run per plane: output pixel p (row p / W, column p % W) sums in[c][p + dy * W + dx], so the
// last k - 1 columns of each output row are junk (they wrap into the next row), and the reads of the last plane
// run up to k + 14 floats past its end (the pools' up to 8): callers leave that much room after a map.

/** Valid convolution, stride 1: out[co][p] = bias[co] + sum over (ci, dy, dx) of in[ci][p + dy * W + dx] *
 * w[co][ci][dy][dx], for p in [0, count) (count a multiple of 16; rows of W floats, junk past column W - k).
 * `w`: every weight as a 4-lane splat (v128), ordered (co, ci, dy, dx); `bias`: splats too. `cout` even. */
export function conv(input: usize, inImg: i32, inPlane: i32, W: i32, cin: i32, k: i32, w: usize, bias: usize,
                     cout: i32, output: usize, outImg: i32, outPlane: i32, count: i32, n: i32): void {
  if (k == 3) convK(input, inImg, inPlane, W, cin, 3, w, bias, cout, output, outImg, outPlane, count, n);
  else if (k == 5) convK(input, inImg, inPlane, W, cin, 5, w, bias, cout, output, outImg, outPlane, count, n);
  else if (k == 7) convK(input, inImg, inPlane, W, cin, 7, w, bias, cout, output, outImg, outPlane, count, n);
  else convK(input, inImg, inPlane, W, cin, k, w, bias, cout, output, outImg, outPlane, count, n);
}

// (inlined with a constant k, which lets the compiler unroll the innermost loop)
@inline function convK(input: usize, inImg: i32, inPlane: i32, W: i32, cin: i32, k: i32, w: usize, bias: usize,
                       cout: i32, output: usize, outImg: i32, outPlane: i32, count: i32, n: i32): void {
  const perChannel = <usize>(cin * k * k * 16); // bytes of one output channel's splatted weights
  for (let img = 0; img < n; img++) {
    const ib = input + <usize>(img * inImg) * 4, ob = output + <usize>(img * outImg) * 4;
    for (let p = 0; p < count; p += 16) {
      const at = ib + <usize>p * 4;
      for (let co = 0; co < cout; co += 2) {
        let wp = w + <usize>co * perChannel;
        const b0 = v128.load(bias + <usize>co * 16), b1 = v128.load(bias + <usize>co * 16, 16);
        let a0 = b0, a1 = b0, a2 = b0, a3 = b0, c0 = b1, c1 = b1, c2 = b1, c3 = b1;
        for (let ci = 0; ci < cin; ci++) {
          for (let dy = 0; dy < k; dy++) {
            const row = at + <usize>(ci * inPlane + dy * W) * 4;
            for (let dx = 0; dx < k; dx++) {
              const u = v128.load(wp), v = v128.load(wp + perChannel), r = row + <usize>dx * 4;
              let x = v128.load(r);
              a0 = f32x4.add(a0, f32x4.mul(x, u)); c0 = f32x4.add(c0, f32x4.mul(x, v));
              x = v128.load(r, 16);
              a1 = f32x4.add(a1, f32x4.mul(x, u)); c1 = f32x4.add(c1, f32x4.mul(x, v));
              x = v128.load(r, 32);
              a2 = f32x4.add(a2, f32x4.mul(x, u)); c2 = f32x4.add(c2, f32x4.mul(x, v));
              x = v128.load(r, 48);
              a3 = f32x4.add(a3, f32x4.mul(x, u)); c3 = f32x4.add(c3, f32x4.mul(x, v));
              wp += 16;
            }
          }
        }
        const o = ob + <usize>(co * outPlane + p) * 4, o2 = o + <usize>outPlane * 4;
        v128.store(o, a0); v128.store(o, a1, 16); v128.store(o, a2, 32); v128.store(o, a3, 48);
        v128.store(o2, c0); v128.store(o2, c1, 16); v128.store(o2, c2, 32); v128.store(o2, c3, 48);
      }
    }
  }
}

/** ReLU of the 2x2 max-pool (stride 2, floor) of the H x OW top-left part of C planes with rows W floats long,
 * written compact: out[c][y][x] for y < H / 2, x < OW / 2 (planes outPlane floats apart). */
export function reluPool(input: usize, inImg: i32, inPlane: i32, W: i32, H: i32, OW: i32, C: i32,
                         output: usize, outImg: i32, outPlane: i32, n: i32): void {
  const PH = H >> 1, PW = OW >> 1, zero = f32x4.splat(0);
  for (let img = 0; img < n; img++) {
    for (let c = 0; c < C; c++) {
      const ib = input + <usize>(img * inImg + c * inPlane) * 4, ob = output + <usize>(img * outImg + c * outPlane) * 4;
      for (let y = 0; y < PH; y++) {
        const r0 = ib + <usize>(2 * y * W) * 4, r1 = r0 + <usize>W * 4, o = ob + <usize>(y * PW) * 4;
        if (PW < 4) {
          for (let x = 0; x < PW; x++) {
            const a = max(load<f32>(r0 + <usize>(8 * x)), load<f32>(r0 + <usize>(8 * x + 4)));
            const b = max(load<f32>(r1 + <usize>(8 * x)), load<f32>(r1 + <usize>(8 * x + 4)));
            store<f32>(o + <usize>(4 * x), max<f32>(max(a, b), 0));
          }
          continue;
        }
        for (let x = 0; x < PW; x += 4) {
          const xs = min(x, PW - 4); // the last four overlap the ones before when PW is not a multiple of 4
          const s = <usize>(8 * xs);
          const lo = f32x4.max(v128.load(r0 + s), v128.load(r1 + s));
          const hi = f32x4.max(v128.load(r0 + s, 16), v128.load(r1 + s, 16));
          const m = f32x4.max(v128.shuffle<f32>(lo, hi, 0, 2, 4, 6), v128.shuffle<f32>(lo, hi, 1, 3, 5, 7));
          v128.store(o + <usize>(4 * xs), f32x4.max(m, zero));
        }
      }
    }
  }
}

/** Fully connected: out[i][m] = bias[m] + sum over k < K of in[i][k] * w[m][k], then ReLU when `relu`, for
 * m < M. K a multiple of 4 (rows zero-padded), M a multiple of 4 (zero rows), n even (an odd batch reads and
 * writes one image past its end: room for it is the caller's). w: (M, K) row-major; bias: M floats. */
export function dense(input: usize, inImg: i32, K: i32, w: usize, bias: usize, M: i32, relu: bool,
                      output: usize, outImg: i32, n: i32): void {
  for (let i = 0; i < n; i += 2) {
    const x0 = input + <usize>(i * inImg) * 4, x1 = x0 + <usize>inImg * 4;
    const o0 = output + <usize>(i * outImg) * 4, o1 = o0 + <usize>outImg * 4;
    for (let m = 0; m < M; m += 4) {
      const w0 = w + <usize>(m * K) * 4, w1 = w0 + <usize>K * 4, w2 = w1 + <usize>K * 4, w3 = w2 + <usize>K * 4;
      let a0 = f32x4.splat(0), a1 = a0, a2 = a0, a3 = a0, b0 = a0, b1 = a0, b2 = a0, b3 = a0;
      for (let k = 0; k < K; k += 4) {
        const s = <usize>k * 4, u = v128.load(x0 + s), v = v128.load(x1 + s);
        let q = v128.load(w0 + s); a0 = f32x4.add(a0, f32x4.mul(u, q)); b0 = f32x4.add(b0, f32x4.mul(v, q));
        q = v128.load(w1 + s); a1 = f32x4.add(a1, f32x4.mul(u, q)); b1 = f32x4.add(b1, f32x4.mul(v, q));
        q = v128.load(w2 + s); a2 = f32x4.add(a2, f32x4.mul(u, q)); b2 = f32x4.add(b2, f32x4.mul(v, q));
        q = v128.load(w3 + s); a3 = f32x4.add(a3, f32x4.mul(u, q)); b3 = f32x4.add(b3, f32x4.mul(v, q));
      }
      const bs = v128.load(bias + <usize>m * 4);
      let r = f32x4.add(bs, sums(a0, a1, a2, a3)), t = f32x4.add(bs, sums(b0, b1, b2, b3));
      if (relu) { r = f32x4.max(r, f32x4.splat(0)); t = f32x4.max(t, f32x4.splat(0)); }
      v128.store(o0 + <usize>m * 4, r);
      v128.store(o1 + <usize>m * 4, t);
    }
  }
}

/** [sum of a's lanes, sum of b's, of c's, of d's]. */
@inline function sums(a: v128, b: v128, c: v128, d: v128): v128 {
  const ab = f32x4.add(v128.shuffle<f32>(a, b, 0, 1, 4, 5), v128.shuffle<f32>(a, b, 2, 3, 6, 7)); // a01 a23 b01 b23
  const cd = f32x4.add(v128.shuffle<f32>(c, d, 0, 1, 4, 5), v128.shuffle<f32>(c, d, 2, 3, 6, 7));
  return f32x4.add(v128.shuffle<f32>(ab, cd, 0, 2, 4, 6), v128.shuffle<f32>(ab, cd, 1, 3, 5, 7));
}

/** (x - mean) / std of S x S images (mirrored left to right when `mirror`), written as rows `row` floats apart
 * from float `offset` of each output image: compact (row S, offset 0) for a convolution, or inside the zero
 * frame of (S + 2)-square images (row S + 2, offset S + 3; the frame is the caller's, zeroed once) for `warp`. */
export function normalize(input: usize, inImg: i32, S: i32, mean: f32, std: f32, mirror: bool,
                          output: usize, outImg: i32, row: i32, offset: i32, n: i32): void {
  for (let img = 0; img < n; img++) {
    const ib = input + <usize>(img * inImg) * 4, ob = output + <usize>(img * outImg + offset) * 4;
    for (let y = 0; y < S; y++) {
      for (let x = 0; x < S; x++) {
        const v = load<f32>(ib + <usize>(y * S + (mirror ? S - 1 - x : x)) * 4);
        store<f32>(ob + <usize>(y * row + x) * 4, (v - mean) / std);
      }
    }
  }
}

/** The STN's sampler: grid_sample(z, affine_grid(θ), bilinear, zeros, align_corners=False) of S x S images z
 * given in `normalize`'s frames, with θ (2 x 3 per image, row-major, `thetaImg` floats apart) and the grid's
 * pixel centres `centres` (S floats in [-1, 1]; S a multiple of 4); in the float operations, and their order, of
 * the exported graph and ONNX Runtime's GridSample, four pixels of a row at a time. Output: S x S per image. */
export function warp(frames: usize, frameImg: i32, S: i32, theta: usize, thetaImg: i32, centres: usize,
                     output: usize, outImg: i32, n: i32): void {
  const P = S + 2, size = f32x4.splat(<f32>S), one = f32x4.splat(1), half = f32x4.splat(0.5);
  const low = f32x4.splat(-1), rowP = i32x4.splat(P);
  for (let img = 0; img < n; img++) {
    const t = theta + <usize>(img * thetaImg) * 4, z = frames + <usize>(img * frameImg) * 4;
    const t0 = f32x4.splat(load<f32>(t)), t1 = load<f32>(t, 4), t2 = f32x4.splat(load<f32>(t, 8));
    const t3 = f32x4.splat(load<f32>(t, 12)), t4 = load<f32>(t, 16), t5 = f32x4.splat(load<f32>(t, 20));
    let o = output + <usize>(img * outImg) * 4;
    for (let i = 0; i < S; i++) {
      const ci = load<f32>(centres + <usize>i * 4), bx = f32x4.splat(t1 * ci), by = f32x4.splat(t4 * ci);
      for (let j = 0; j < S; j += 4) {
        const cj = v128.load(centres + <usize>j * 4);
        const x = f32x4.mul(f32x4.sub(f32x4.mul(f32x4.add(f32x4.add(f32x4.add(f32x4.mul(t0, cj), bx), t2), one), size), one), half);
        const y = f32x4.mul(f32x4.sub(f32x4.mul(f32x4.add(f32x4.add(f32x4.add(f32x4.mul(t3, cj), by), t5), one), size), one), half);
        const fx = f32x4.floor(x), fy = f32x4.floor(y);
        const inside = v128.and(v128.and(f32x4.ge(fx, low), f32x4.lt(fx, size)), v128.and(f32x4.ge(fy, low), f32x4.lt(fy, size)));
        const dx1 = f32x4.sub(x, fx), dx2 = f32x4.sub(f32x4.add(fx, one), x);
        const dy1 = f32x4.sub(y, fy), dy2 = f32x4.sub(f32x4.add(fy, one), y);
        // the frame offset of each pixel's top-left tap (0 outside, where the answer is 0 anyway)
        const at = v128.and(i32x4.add(i32x4.mul(i32x4.trunc_sat_f32x4_s(f32x4.add(fy, one)), rowP),
          i32x4.trunc_sat_f32x4_s(f32x4.add(fx, one))), inside);
        const a0 = z + <usize>i32x4.extract_lane(at, 0) * 4, a1 = z + <usize>i32x4.extract_lane(at, 1) * 4;
        const a2 = z + <usize>i32x4.extract_lane(at, 2) * 4, a3 = z + <usize>i32x4.extract_lane(at, 3) * 4;
        const down = <usize>P * 4;
        const p11 = taps(a0, a1, a2, a3, 0), p12 = taps(a0, a1, a2, a3, 4);
        const p21 = taps(a0 + down, a1 + down, a2 + down, a3 + down, 0), p22 = taps(a0 + down, a1 + down, a2 + down, a3 + down, 4);
        const v = f32x4.add(f32x4.add(f32x4.add(f32x4.mul(f32x4.mul(dy2, dx2), p11), f32x4.mul(f32x4.mul(dy2, dx1), p12)),
          f32x4.mul(f32x4.mul(dy1, dx2), p21)), f32x4.mul(f32x4.mul(dy1, dx1), p22));
        v128.store(o, v128.and(v, inside));
        o += 16;
      }
    }
  }
}

/** [the floats at a + offset, b + offset, c + offset, d + offset]. */
@inline function taps(a: usize, b: usize, c: usize, d: usize, offset: usize): v128 {
  let v = f32x4.splat(load<f32>(a + offset));
  v = f32x4.replace_lane(v, 1, load<f32>(b + offset));
  v = f32x4.replace_lane(v, 2, load<f32>(c + offset));
  return f32x4.replace_lane(v, 3, load<f32>(d + offset));
}

/** PReLU in place: x if x >= 0, else slope[c] * x, on C planes of `count` floats (a multiple of 4) each.
 * `slopes`: one 4-lane splat per channel. */
export function prelu(data: usize, img: i32, plane: i32, count: i32, C: i32, slopes: usize, n: i32): void {
  const zero = f32x4.splat(0);
  for (let i = 0; i < n; i++) {
    for (let c = 0; c < C; c++) {
      const a = v128.load(slopes + <usize>c * 16);
      let p = data + <usize>(i * img + c * plane) * 4;
      for (let j = 0; j < count; j += 4) {
        const v = v128.load(p);
        v128.store(p, v128.bitselect(v, f32x4.mul(v, a), f32x4.ge(v, zero)));
        p += 16;
      }
    }
  }
}

/** Max-pool of k x k windows (k = 2 or 3) at stride 2 with PyTorch's ceil_mode (the last window cut at the
 * edge) of the H x OW top-left part of C planes with rows W floats long, written compact: ceil((H - k) / 2) + 1
 * rows of ceil((OW - k) / 2) + 1, planes outPlane floats apart. Four outputs at a time where their windows are
 * whole, one at a time at the edges. */
export function maxPool(input: usize, inImg: i32, inPlane: i32, W: i32, H: i32, OW: i32, C: i32, k: i32,
                        output: usize, outImg: i32, outPlane: i32, n: i32): void {
  const PH = (H - k + 1) / 2 + 1, PW = (OW - k + 1) / 2 + 1; // ceil((H - k) / 2) + 1
  const whole = (OW - k) / 2 + 1; // outputs whose window lies inside the row
  const vectors = whole / 4 * 4; // (k = 3 reads three floats past its four windows, and leaves them)
  for (let img = 0; img < n; img++) {
    for (let c = 0; c < C; c++) {
      const ib = input + <usize>(img * inImg + c * inPlane) * 4, ob = output + <usize>(img * outImg + c * outPlane) * 4;
      for (let y = 0; y < PH; y++) {
        const y0 = 2 * y, y1 = min(y0 + k, H), o = ob + <usize>(y * PW) * 4;
        for (let x = 0; x < vectors; x += 4) {
          let m = rowMax(ib + <usize>(y0 * W + 2 * x) * 4, k);
          for (let yy = y0 + 1; yy < y1; yy++) m = f32x4.max(m, rowMax(ib + <usize>(yy * W + 2 * x) * 4, k));
          v128.store(o + <usize>x * 4, m);
        }
        for (let x = vectors; x < PW; x++) {
          const x0 = 2 * x, x1 = min(x0 + k, OW);
          let m = load<f32>(ib + <usize>(y0 * W + x0) * 4);
          for (let yy = y0; yy < y1; yy++) {
            for (let xx = x0; xx < x1; xx++) m = max(m, load<f32>(ib + <usize>(yy * W + xx) * 4));
          }
          store<f32>(o + <usize>x * 4, m);
        }
      }
    }
  }
}

/** The maxima of four k-wide windows at stride 2 along a row (k = 2 or 3), from `at`. */
@inline function rowMax(at: usize, k: i32): v128 {
  const lo = v128.load(at), hi = v128.load(at, 16);
  const even = v128.shuffle<f32>(lo, hi, 0, 2, 4, 6), odd = v128.shuffle<f32>(lo, hi, 1, 3, 5, 7);
  const m = f32x4.max(even, odd);
  if (k == 2) return m;
  const next = v128.shuffle<f32>(even, v128.load(at, 32), 1, 2, 3, 4); // the windows' third floats
  return f32x4.max(m, next);
}

/** The H x OW top-left part of C planes with rows W floats long, written compact (rows OW floats long). */
export function compact(input: usize, inImg: i32, inPlane: i32, W: i32, H: i32, OW: i32, C: i32,
                        output: usize, outImg: i32, outPlane: i32, n: i32): void {
  for (let img = 0; img < n; img++) {
    for (let c = 0; c < C; c++) {
      const ib = input + <usize>(img * inImg + c * inPlane) * 4, ob = output + <usize>(img * outImg + c * outPlane) * 4;
      for (let y = 0; y < H; y++) memory.copy(ob + <usize>(y * OW) * 4, ib + <usize>(y * W) * 4, <usize>OW * 4);
    }
  }
}
