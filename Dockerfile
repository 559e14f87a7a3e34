# syntax=docker/dockerfile:1
# iocmng container image: a `FROM scratch` image holding the single executable and exactly what it
# needs at run time (glibc + loader, git with https and file:// clone support, CA certificates,
# libca/libCom for the Channel Access client, /bin/sh for git's local transport). The tree is
# assembled by scripts/rootfs.sh, which test/rootfs/ also runs and chroots into.
#
#   docker build -t iocmng .
#   docker run -p 8080:8080 -p 5064:5064/tcp -p 5064:5064/udp -v iocmng-data:/data iocmng

ARG DEBIAN=bookworm

# 1. Build the executable with the pinned Bun (from package.json "engines").
FROM debian:${DEBIAN}-slim AS build
ARG BUN_VERSION=1.4.4
RUN apt-get update -qq \
 && apt-get install -y -qq --no-install-recommends ca-certificates curl unzip \
 && rm -rf /var/lib/apt/lists/*
RUN curl -fsSL "https://github.com/oven-sh/bun/releases/download/bun-v${BUN_VERSION}/bun-linux-x64.zip" -o /tmp/bun.zip \
 && unzip -q /tmp/bun.zip -d /tmp \
 && install -m 0755 /tmp/bun-linux-x64/bun /usr/local/bin/bun \
 && rm -rf /tmp/bun.zip /tmp/bun-linux-x64
WORKDIR /src
COPY package.json bun.lock bunfig.toml tsconfig.json ./
RUN bun install --frozen-lockfile --production --ignore-scripts
COPY src ./src
COPY ffi ./ffi
COPY scripts/build.ts ./scripts/build.ts
RUN bun scripts/build.ts --force && ./dist/iocmng --version

# 2. Assemble the run-time tree from Debian's packages with the same script the tests use.
FROM debian:${DEBIAN}-slim AS rootfs
RUN apt-get update -qq \
 && apt-get install -y -qq --no-install-recommends git ca-certificates libca4.13.5 \
 && rm -rf /var/lib/apt/lists/*
COPY scripts/rootfs.sh /usr/local/bin/rootfs.sh
COPY --from=build /src/dist/iocmng /tmp/iocmng
RUN sh /usr/local/bin/rootfs.sh /rootfs /tmp/iocmng

# 3. The image: nothing but that tree.
FROM scratch
COPY --from=rootfs /rootfs /
ENV PATH=/usr/local/bin:/usr/bin \
    HOME=/data \
    TMPDIR=/tmp \
    IOCMNG_HOST=0.0.0.0 \
    IOCMNG_PORT=8080 \
    IOCMNG_PLUGINS_DIR=/data/plugins \
    IOCMNG_STATE_DIR=/data/state \
    IOCMNG_LOG_PRETTY=0 \
    MIMALLOC_PURGE_DELAY=1000 \
    MIMALLOC_PURGE_HOLES_MIN_INTERVAL=1000 \
    EPICS_CA_SERVER_PORT=5064
USER 10001:10001
WORKDIR /data
VOLUME ["/data"]
EXPOSE 8080 5064/tcp 5064/udp
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
  CMD ["/usr/local/bin/iocmng", "health", "--timeout", "4"]
ENTRYPOINT ["/usr/local/bin/iocmng"]
CMD ["serve"]
