# Restate server from the npm package's binary (statically linked): no base image at all.
# Built by scripts/docker-engine build (context: the binary, the host's CA bundle, busybox);
# a drop-in for restatedev/restate where that image cannot be pulled.
FROM scratch
COPY restate-server /usr/local/bin/restate-server
# rustls loads the system roots at start and panics without them.
COPY ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
# Static busybox, only for health checks (`/bin/busybox wget -q -O /dev/null URL`).
COPY busybox /bin/busybox
ENV RESTATE_DISABLE_TELEMETRY=true \
    RESTATE_LOG_DISABLE_ANSI_CODES=true
# The default base dir is ./restate-data: /restate-data, as in the official image.
WORKDIR /
EXPOSE 8080 9070 5122
ENTRYPOINT ["/usr/local/bin/restate-server"]
