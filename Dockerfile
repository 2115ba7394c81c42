# syntax=docker/dockerfile:1
# keyledger in a small runtime image: `docker build -t keyledger .`
# The binary is the whole product: admin, node, audit, keys, keygen.

FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p keyledger-cli \
    && cp target/release/keyledger /usr/local/bin/keyledger

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 keyledger \
    && useradd --system --uid 10001 --gid keyledger --no-create-home --shell /usr/sbin/nologin keyledger \
    && mkdir -p /keys && chown keyledger:keyledger /keys
COPY --from=build /usr/local/bin/keyledger /usr/local/bin/keyledger
USER keyledger:keyledger
ENV KEYLEDGER_LOG_FORMAT=json
EXPOSE 8080 8081
# Asks /readyz of the service on KEYLEDGER_LISTEN.
HEALTHCHECK --interval=10s --timeout=4s --start-period=20s --retries=3 CMD ["keyledger", "healthcheck"]
ENTRYPOINT ["keyledger"]
CMD ["--help"]
