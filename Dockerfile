# The FHIR server image. In production it talks to a MongoDB replica set (see docker-compose.yml);
# the embedded store is not installed here.
FROM python:3.11-slim
WORKDIR /app
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 FHIR_HOST=0.0.0.0 FHIR_PORT=8080
COPY pyproject.toml README.md ./
COPY fhir_server ./fhir_server
COPY terminology ./terminology
RUN pip install --no-cache-dir .
EXPOSE 8080
USER nobody
HEALTHCHECK --interval=10s --timeout=3s CMD python -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8080/health/ready').status == 200 else 1)"
CMD ["fhir-server", "serve"]
