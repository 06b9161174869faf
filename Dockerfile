FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /srv/image-pipeline

COPY pyproject.toml README.md ./
COPY app ./app
COPY workers ./workers
RUN pip install . && useradd --system --home-dir /srv/image-pipeline pipeline \
    && mkdir -p /data && chown pipeline /data

USER pipeline
ENV IMAGE_PIPELINE_DATA_DIR=/data
EXPOSE 8000
CMD ["gunicorn", "--bind", "0.0.0.0:8000", "--workers", "2", "--threads", "4", "app:create_app()"]
