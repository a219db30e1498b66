# The project's image: the UI and the build job (docker-compose.yml).
FROM python:3.11-slim
WORKDIR /app
RUN apt-get update && apt-get install -y --no-install-recommends libgl1 libglib2.0-0 && rm -rf /var/lib/apt/lists/*
COPY pyproject.toml README.md ./
COPY toolkit toolkit
COPY taxonomy taxonomy
COPY index index
COPY embed embed
COPY training training
COPY ui ui
COPY demo demo
RUN pip install --no-cache-dir '.[postgres]'
ENV TOL_STORE=http://qdrant:6333 TOL_DB=sqlite:////data/catalog.db
VOLUME ["/data", "/collection"]
