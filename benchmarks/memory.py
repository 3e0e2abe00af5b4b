"""Peak resident memory of one process that loads every bundled model and analyses a 24-megapixel photo
(6000x4000 JPEG made from the public-domain astronaut). Prints JSON. Target: under 2 GB.

    python benchmarks/memory.py
"""

from __future__ import annotations

import io
import json
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _env import environment  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def main() -> None:
    from PIL import Image

    from deep_emotion import AnalysisOptions, Pipeline, load_image

    after_import = rss_mb()
    pipe = Pipeline.from_names(None, posthoc=False)  # every bundled model, the networks alone
    small = Image.open(ROOT / "webapp" / "examples" / "astronaut.jpg").convert("RGB")
    buf = io.BytesIO()
    small.resize((6000, 4000), Image.Resampling.BILINEAR).save(buf, format="JPEG", quality=90)
    data = buf.getvalue()
    del small
    t = time.perf_counter()
    photo = load_image(data)
    result = pipe.analyze(photo, options=AnalysisOptions(window=8, stride=2, faithfulness=True))  # every default map
    seconds = time.perf_counter() - t
    print(
        json.dumps(
            {
                "benchmark": "memory",
                "photo": "6000x4000 JPEG (24 MP)",
                "jpeg_mb": round(len(data) / 2**20, 1),
                "models": list(pipe.models),
                "faces": len(result.faces),
                "analysis_s": round(seconds, 2),
                "peak_rss_mb_after_import": round(after_import, 1),
                "peak_rss_mb": round(rss_mb(), 1),
                "target_mb": 2048,
                "environment": environment(),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
