# syntax=docker/dockerfile:1
# The serving image: the API, its serving dependencies, and exactly the model that dvc.lock names,
# fetched from the DVC remote at build time. Nothing of the training stack, git or credentials stays.
#
#   docker build --secret id=dvc_config,src=.dvc/config.local \
#     --build-arg GIT_COMMIT="$(git rev-parse HEAD)" --build-arg MODEL_MD5=<md5 of model/model.pkl in dvc.lock> -t film-gross .
#
# The secret is a DVC config file with the remote's credentials (and endpoint, if it differs from
# .dvc/config); `make image` passes .dvc/config.local.
ARG BASE_IMAGE=python:3.11-slim

# --- stage 1: fetch the model with DVC --------------------------------------------------------
FROM ${BASE_IMAGE} AS model
# Only for machines that reach the package index through their own CA (mounted by the build).
ARG PIP_CERT
WORKDIR /src
COPY requirements_dvc.txt constraints.txt ./
RUN python3 -m venv /opt/dvc \
    && /opt/dvc/bin/pip install --no-cache-dir --disable-pip-version-check -r requirements_dvc.txt -c constraints.txt
COPY .dvc/config .dvc/config
COPY dvc.yaml dvc.lock params.yaml ./
# core.no_scm: there is no .git in the build context; `dvc pull export` fetches only that stage's outputs.
RUN --mount=type=secret,id=dvc_config,target=/src/.dvc/config.local,required=true \
    /opt/dvc/bin/dvc config core.no_scm true \
    && /opt/dvc/bin/dvc pull export \
    && rm -rf .dvc/cache

# --- stage 2: the runtime ---------------------------------------------------------------------
FROM ${BASE_IMAGE}
ARG GIT_COMMIT=unknown
ARG MODEL_MD5=unknown
ARG PIP_CERT
LABEL org.opencontainers.image.title="film-gross-api" \
      org.opencontainers.image.description="Worldwide gross of a film, served from the DVC pipeline's exported model" \
      org.opencontainers.image.revision="${GIT_COMMIT}" \
      io.github.film-gross.model-md5="${MODEL_MD5}"

COPY requirements_serve.txt constraints.txt /tmp/
RUN python3 -m venv /opt/venv \
    && /opt/venv/bin/pip install --no-cache-dir --disable-pip-version-check -r /tmp/requirements_serve.txt -c /tmp/constraints.txt \
    && rm /tmp/requirements_serve.txt /tmp/constraints.txt

WORKDIR /app
COPY initializer.sh ./
COPY api/ api/
COPY --from=model /src/model/model.pkl /src/model/feature_schema.json /src/model/provenance.json /src/model/model_card.md model/

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    NUMBA_CACHE_DIR=/app/.numba-cache \
    PORT=8080
# Load, verify and compile the model once at build time: a wrong model fails the build, and the
# compiled tree walker is cached so a cold start does not compile it again.
RUN python3 -c "from api.model_store import load_model, read_json; from pathlib import Path; d = Path('model'); load_model(d, read_json(d / 'feature_schema.json'))" \
    && useradd --system --uid 10001 --no-create-home --home-dir /app api \
    && chmod -R a+rX /app \
    && chown -R api "$NUMBA_CACHE_DIR"

USER 10001
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python3", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/ready' % os.environ.get('PORT', '8080'), timeout=2)"]
ENTRYPOINT ["./initializer.sh"]
