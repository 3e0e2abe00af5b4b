# Hugging Face Spaces (Docker SDK) or any Docker host: the Streamlit app on 0.0.0.0:7860.
FROM python:3.11-slim

RUN apt-get update && apt-get install -y --no-install-recommends make libgl1 libglib2.0-0 \
    && rm -rf /var/lib/apt/lists/*

# Spaces run the container as uid 1000
RUN useradd -m -u 1000 user
USER user
ENV HOME=/home/user PATH=/home/user/app/.venv/bin:$PATH PYTHONUNBUFFERED=1
# fewer glibc malloc arenas: with several visitors at once the app's peak memory stays lower (measured with
# benchmarks/load.py, README "Under load")
ENV MALLOC_ARENA_MAX=2
WORKDIR /home/user/app

# the same install as `make run` (make install), with PyTorch's CPU wheels instead of the CUDA build
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
