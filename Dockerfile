# Hugging Face Spaces (Docker SDK; a paid plan since July 2026, see README "Hosting") or any Docker host:
# the Streamlit app on 0.0.0.0:7860. `python tools/docker_dry_run.py` replays this file without Docker (tested).
FROM python:3.11-slim

# make runs the install; nothing else is needed from apt (no OpenCV: images are decoded by Pillow)
RUN apt-get update && apt-get install -y --no-install-recommends make \
    && rm -rf /var/lib/apt/lists/*

# Spaces run the container as uid 1000; its app folder is made and owned before switching to it (WORKDIR would
# create it root-owned under the legacy builder, and the install would fail with Permission denied)
RUN useradd -m -u 1000 user && mkdir -p /home/user/app && chown user:user /home/user/app
USER user
ENV HOME=/home/user PATH=/home/user/app/.venv/bin:$PATH PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
# fewer glibc malloc arenas: with several visitors at once the app's peak memory stays lower (measured with
# benchmarks/load.py, README "Under load")
ENV MALLOC_ARENA_MAX=2
WORKDIR /home/user/app

# the same install as `make run` (make install: the library and Streamlit, no Gradio), with PyTorch's CPU wheels
COPY --chown=user requirements.txt pyproject.toml Makefile README.md ./
COPY --chown=user deep_emotion deep_emotion
RUN make install PIP_ARGS="--extra-index-url https://download.pytorch.org/whl/cpu"

# checkpoints are baked in: nothing is downloaded when the app starts
COPY --chown=user checkpoints checkpoints
COPY --chown=user webapp webapp
COPY --chown=user .streamlit .streamlit

EXPOSE 7860
# enableXsrfProtection=false: Streamlit's XSRF check rejects uploads made inside the Spaces iframe
CMD ["streamlit", "run", "webapp/app.py", "--server.address=0.0.0.0", "--server.port=7860", \
     "--server.enableXsrfProtection=false"]
