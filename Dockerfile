# The mcpd image, built from source (needs internet for the base images and crates).
# Offline, cluster/compose/build-image.sh builds an image with the same layout from
# `cargo build --release --bins`.
#
#   docker build -t mcp-rust/mcpd:local .
#
# Holds mcpd, the test MCP server (mcp-test-server) and mcpd-probe (health checks). Runs as
# an unprivileged user with its data dir on the /data volume. The node listens on loopback
# unless told otherwise: set MCPD_GRPC_ADDR=0.0.0.0:7400, MCPD_METRICS_ADDR=0.0.0.0:9400 and
# MCPD_ADVERTISE_ADDR (see docker-compose.yml).

FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bins \
 && mkdir /out \
 && cp target/release/mcpd target/release/mcp-test-server target/release/mcpd-probe /out/

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --gid 10001 mcpd \
 && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin mcpd \
 && mkdir /data && chown 10001:10001 /data
COPY --from=build /out/ /usr/local/bin/
ENV MCPD_DATA_DIR=/data
USER 10001:10001
EXPOSE 7400 9400
VOLUME ["/data"]
HEALTHCHECK --interval=5s --timeout=3s --start-period=30s --retries=3 \
  CMD ["/usr/local/bin/mcpd-probe", "http://127.0.0.1:9400/readyz"]
ENTRYPOINT ["/usr/local/bin/mcpd"]
CMD ["node"]
