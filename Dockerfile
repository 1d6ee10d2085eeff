# One image for the four services; docker-compose picks the service with `jaklapor run --services <name>`.
# an exact release, so a rebuild gets the same Python and Debian
FROM python:3.11.16-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY jaklapor ./jaklapor
COPY jaklapor_app ./jaklapor_app
COPY services ./services
RUN pip install . && useradd --system --uid 10001 jaklapor
USER jaklapor
# nameko stops entrypoints and waits for running workers on SIGTERM
STOPSIGNAL SIGTERM
CMD ["jaklapor", "run", "--no-s3-standin"]
