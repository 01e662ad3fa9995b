# syntax=docker/dockerfile:1
#
# The pingmcp image: one static binary on distroless, run as a non-root user.
# Every command (serve, todo-api, idp, dev) is the same binary; Kubernetes
# passes the command and its flags as args (deploy/).
#
#   docker build -t pingmcp .
#
# The build stage runs on the builder's platform and cross-compiles for the
# target one, so `docker buildx build --platform linux/amd64,linux/arm64` needs
# no emulation.

FROM --platform=$BUILDPLATFORM golang:1.26 AS build
WORKDIR /src
# Modules first, so that a source change does not download them again.
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
ARG TARGETOS TARGETARCH
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 GOOS=$TARGETOS GOARCH=$TARGETARCH \
    go build -trimpath -ldflags "-s -w" -o /out/pingmcp ./cmd/pingmcp

# distroless/static: CA certificates (HTTPS to PingFederate) and /etc/passwd,
# no shell, no package manager. 65532 is its "nonroot" user; numeric, so that
# Kubernetes' runAsNonRoot can check it without reading /etc/passwd.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/pingmcp /pingmcp
USER 65532:65532
ENTRYPOINT ["/pingmcp"]
