"""Build the static Space: `python web/build.py OUT` (or `make static`, which writes space-static/).

OUT gets index.html, style.css, src/*.js, the example photo, ort/ (onnxruntime-web's script and wasm, copied from
web/node_modules: run `npm ci` in web/ first; nothing is fetched from a CDN at run time), kernels/ (our own
WebAssembly kernels, compiled from web/kernels/*.ts by AssemblyScript's `asc`, also from web/node_modules),
models/ (every shipped model and MTCNN as ONNX, the paper models' weights for the kernels, models.json) and
README.md with the Space's front matter (`sdk: static`).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

WEB = Path(__file__).resolve().parent
ROOT = WEB.parent
# the CPU build (wasm) and the WebGPU build, which runtime.js picks between; each with its module and wasm binary
ORT_FILES = (
    "ort.wasm.min.mjs",
    "ort-wasm-simd-threaded.wasm",
    "ort-wasm-simd-threaded.mjs",
    "ort.webgpu.min.mjs",
    "ort-wasm-simd-threaded.asyncify.wasm",
    "ort-wasm-simd-threaded.asyncify.mjs",
)
ASC = WEB / "node_modules" / ".bin" / "asc"
ASC_FLAGS = ("-O3", "--runtime", "stub", "--noAssert", "--enable", "simd")
sys.path.insert(0, str(WEB))
from serve import HEADERS  # noqa: E402  (the headers the local server sends: one list for both)

README = """---
title: Deep-Emotion in your browser
emoji: 🙂
colorFrom: blue
colorTo: green
sdk: static
app_file: index.html
pinned: false
license: mit
short_description: Facial expressions and occlusion maps, in your browser
custom_headers:
{headers}
---

# Deep-Emotion, in your browser

A photo, a video file or the live camera: the faces are found (MTCNN) and followed, each chosen model gives its
probabilities, the spatial transformer's view (and the area it samples), the paper's occlusion map with the
window and stride you set, the facial regions that matter, how faithful each map is, and the models' combined
answer. Everything runs in the visitor's browser (ONNX Runtime Web and our own WebAssembly kernels), on the GPU
(WebGPU) where the browser offers one and on every CPU core otherwise (the `custom_headers` above make the page
cross-origin isolated, which multi-threaded WebAssembly needs): **photos, videos and camera frames never leave the
device**. Built by
`make static` from the Deep-Emotion project (models, cards and their evaluation protocols are described in its
README).
"""


def build(out: Path, models: list[str] | None = None, exported: Path | None = None) -> Path:
    """Assemble the page in `out`; `exported`: a folder already holding `export_all`'s files (copied, not redone)."""
    from deep_emotion.serve.onnx_export import export_all

    dist = WEB / "node_modules" / "onnxruntime-web" / "dist"
    missing = [f for f in ORT_FILES if not (dist / f).is_file()]
    if missing:
        raise SystemExit(f"onnxruntime-web is not installed ({', '.join(missing)} missing): run `npm ci` in {WEB}")
    if not ASC.is_file():
        raise SystemExit(f"AssemblyScript is not installed ({ASC} missing): run `npm ci` in {WEB}")
    if out.exists():
        shutil.rmtree(out)
    (out / "src").mkdir(parents=True)
    (out / "ort").mkdir()
    compile_kernels(out / "kernels")
    shutil.copy(WEB / "index.html", out / "index.html")
    for css in WEB.glob("*.css"):
        shutil.copy(css, out / css.name)
    for js in (WEB / "src").glob("*.js"):
        shutil.copy(js, out / "src" / js.name)
    for name in ORT_FILES:
        shutil.copy(dist / name, out / "ort" / name)
    shutil.copy(ROOT / "webapp" / "examples" / "astronaut.jpg", out / "example.jpg")
    headers = "\n".join(f"  {k.lower()}: {v}" for k, v in HEADERS.items())
    (out / "README.md").write_text(README.format(headers=headers))
    if exported:
        shutil.copytree(exported, out / "models")
    else:
        export_all(out / "models", models)
    return out


def compile_kernels(folder: Path) -> None:
    """web/kernels/*.ts as WebAssembly (SIMD) into `folder`, one .wasm each."""
    folder.mkdir(parents=True, exist_ok=True)
    for source in sorted((WEB / "kernels").glob("*.ts")):
        target = (folder / source.with_suffix(".wasm").name).resolve()
        subprocess.run([str(ASC), str(source), *ASC_FLAGS, "-o", str(target)], check=True, cwd=WEB)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path, nargs="?", default=ROOT / "space-static")
    ap.add_argument("--models", help="comma-separated (default: every shipped model)")
    args = ap.parse_args()
    out = build(args.out, args.models.split(",") if args.models else None)
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    print(f"{out}: {size / 2**20:.1f} MB, ready to push to a static Space", file=sys.stderr)


if __name__ == "__main__":
    main()
