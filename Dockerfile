# image-mcp: the MCP server, its dashboard and the Gemini adapter in one small image.
#
#   docker build -t image-mcp .
#   docker run --rm -p 127.0.0.1:8766:8766 -e IMG_AUTH_DISABLED=1 -v image-mcp-data:/srv/images image-mcp
#
# Configuration comes only from the environment at run time (docs/configuration.md);
# nothing secret is baked in. tests/test_packaging.py replays this file's builder RUN
# steps outside Docker, so keep every install step in a RUN line of the builder stage.

# The tests run on the same Python minor version (tests/test_packaging.py checks it).
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# ---- builder: a self-contained virtual environment in /opt/venv -------------------------
FROM ${PYTHON_IMAGE} AS builder
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src

# Third-party dependencies first: this layer is reused until a lock file changes. pip and
# the build backend live in /opt/build, hash-locked too, so nothing is resolved or fetched
# unpinned; /opt/venv, the only thing the runtime stage gets, holds no installer at all.
COPY requirements.lock requirements-build.lock ./
RUN python -m venv /opt/build \
    && /opt/build/bin/pip install --no-cache-dir --require-hashes -r requirements-build.lock \
    && python -m venv --without-pip /opt/venv \
    && /opt/build/bin/pip --python /opt/venv/bin/python install --no-cache-dir \
        --require-hashes -r requirements.lock

# Then the two workspace packages: wheels built with the locked backend, installed alone.
COPY packages/ ./packages/
RUN /opt/build/bin/pip wheel --no-cache-dir --no-deps --no-build-isolation \
        --wheel-dir /opt/dist ./packages/image_core ./packages/image_server \
    && /opt/build/bin/pip --python /opt/venv/bin/python install --no-cache-dir --no-deps \
        --no-index --find-links /opt/dist image-core image-server

# ---- runtime: the venv and an unprivileged user, no build tools --------------------------
FROM ${PYTHON_IMAGE} AS runtime
# CI adds source, revision, version and created at build time (docker/metadata-action).
LABEL org.opencontainers.image.title="image-mcp" \
      org.opencontainers.image.description="Self-hosted MCP server that lets Claude generate images with Gemini behind Google login."

RUN groupadd --system --gid 10001 imagemcp \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin imagemcp \
    && mkdir -p /srv/images \
    && chown 10001:10001 /srv/images \
    && chmod 0750 /srv/images

COPY --from=builder /opt/venv /opt/venv

# Inside the container the server must listen on every interface (set explicitly, since
# with login off it would otherwise keep to loopback); publish the port on the host's
# loopback (-p 127.0.0.1:8766:8766) and let the reverse proxy reach it there.
# (The server fixes glibc's mmap threshold itself at start-up: process_tuning.py.)
ENV IMG_ROOT=/srv/images \
    IMG_HOST=0.0.0.0 \
    PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1

VOLUME /srv/images
EXPOSE 8766
USER 10001:10001

# Python from the image only (the slim base has no curl or wget); follows IMG_PORT.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, sys, urllib.request; port = os.environ.get('IMG_PORT') or '8766'; sys.exit(0 if urllib.request.urlopen(f'http://127.0.0.1:{port}/health', timeout=3).status == 200 else 1)"]

ENTRYPOINT ["image-mcp"]
CMD ["serve"]
