FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml constraints.txt README.md ./
COPY server ./server
COPY static ./static
RUN pip install --no-cache-dir -c constraints.txt . \
    && useradd --system --uid 10001 queuecast
USER queuecast
ENV QUEUECAST_HOST=0.0.0.0
EXPOSE 8000
ENTRYPOINT ["queuecast"]
CMD ["serve"]
