FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY bastion bastion
COPY watchers watchers
COPY mitigations mitigations
COPY escalations escalations
COPY audit audit
COPY templates templates
COPY manage.py ./
RUN pip install --no-cache-dir . \
    && python manage.py collectstatic --noinput
EXPOSE 8000
