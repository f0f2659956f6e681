# sluice in a container: the binary plus every example plugin.
#
#   docker build -t sluice .
#   docker run --rm -v "$PWD/pipeline.yaml:/etc/sluice/pipeline.yaml:ro" \
#     sluice run /etc/sluice/pipeline.yaml
#
# examples/compose runs a whole demo (Kafka, load, sluice, Prometheus) with
# this image.

FROM golang:1.26 AS build
WORKDIR /src
# Static binaries: the runtime image has no libc.
ENV CGO_ENABLED=0
# Modules first: a source change then reuses the download layer.
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/sluice ./cmd/sluice
# One executable per plugin directory, named after it (examples/plugins/redact
# -> /out/plugins/redact). A tree without example plugins gets an empty folder.
RUN mkdir -p /out/plugins && \
    if [ -d examples/plugins ]; then \
      go build -trimpath -ldflags "-s -w" -o /out/plugins/ ./examples/plugins/...; \
    fi

# distroless/static: no shell, no package manager, CA certificates included
# (for Kafka over TLS); :nonroot runs as uid 65532.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/sluice /usr/local/bin/sluice
COPY --from=build /out/plugins/ /plugins/
# Plugin names in pipelines (`plugin: redact`) are looked up here.
ENV SLUICE_PLUGIN_DIR=/plugins
USER nonroot:nonroot
WORKDIR /home/nonroot
# /metrics /healthz /readyz /graph, when the pipeline sets
# settings.http.listen: 0.0.0.0:9464 (the default listens on loopback only).
EXPOSE 9464
# sluice drains on SIGTERM (docker stop); give it more than the pipeline's
# drain_timeout: docker stop -t, compose stop_grace_period, Kubernetes
# terminationGracePeriodSeconds.
STOPSIGNAL SIGTERM
ENTRYPOINT ["sluice"]
CMD ["--help"]
