# syntax=docker/dockerfile:1
# DocBrain Sync: both binaries (docbrain, docbrain-server) and the local embedding model in a
# small non-root image.
#
#   docker build -t docbrain-sync .
#   docker run -p 3000:3000 -v docbrain-data:/data --env-file .env docbrain-sync

FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p docbrain-cli -p docbrain-server \
 && mkdir -p /out \
 && cp target/release/docbrain target/release/docbrain-server /out/ \
 && strip --strip-debug /out/docbrain /out/docbrain-server

FROM python:3.11-slim AS model
COPY scripts/fetch-model.sh /usr/local/bin/fetch-model.sh
RUN MODEL_DIR=/models/all-MiniLM-L6-v2 bash /usr/local/bin/fetch-model.sh

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/* \
 && groupadd --system --gid 10001 docbrain \
 && useradd --system --uid 10001 --gid docbrain --home-dir /data --no-create-home docbrain \
 && mkdir -p /data \
 && chown docbrain:docbrain /data
COPY --from=build /out/ /usr/local/bin/
COPY --from=model /models /opt/docbrain/models
ENV MODEL_DIR=/opt/docbrain/models/all-MiniLM-L6-v2 \
    DOCBRAIN_DATA_DIR=/data/index \
    WEBHOOK_JOURNAL_DIR=/data/journal \
    SERVER_BIND=0.0.0.0 \
    SERVER_PORT=3000
USER 10001:10001
WORKDIR /data
VOLUME ["/data"]
EXPOSE 3000
CMD ["docbrain-server"]
