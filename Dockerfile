# Two stages: the first builds the wheel (static/ goes inside it as server/_static), the second
# installs only that wheel, so the image serves what `pip install queuecast` would, with no
# source tree beside it.
FROM python:3.11-slim AS wheel
WORKDIR /src
COPY pyproject.toml constraints.txt README.md ./
COPY server ./server
COPY static ./static
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

FROM python:3.11-slim
COPY constraints.txt /tmp/constraints.txt
COPY --from=wheel /wheels /tmp/wheels
RUN pip install --no-cache-dir -c /tmp/constraints.txt /tmp/wheels/queuecast-*.whl \
    && rm -rf /tmp/wheels /tmp/constraints.txt \
    && useradd --system --uid 10001 queuecast
USER queuecast
ENV QUEUECAST_HOST=0.0.0.0
EXPOSE 8000
ENTRYPOINT ["queuecast"]
CMD ["serve"]
