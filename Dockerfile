# Images of the operator (target manager, the default) and of the PackNow API (target packnow-api):
#   docker build --target manager -t packnow-operator:dev .
#   docker build --target packnow-api -t packnow-api:dev .
# or `make docker-build`. Both binaries are static (CGO off), so the final stages are scratch with CA
# certificates and time zones only: no shell, no package manager, non-root (65532).

ARG GO_VERSION=1.26.8

FROM --platform=$BUILDPLATFORM golang:${GO_VERSION} AS build
ARG TARGETOS TARGETARCH
ARG VERSION=dev
ARG API_IMG=packnow-api:dev
WORKDIR /src
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
# The same target as a local `make build-static`, so the flags live in one place.
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    GOOS=$TARGETOS GOARCH=$TARGETARCH make build-static STATIC_DIR=/out VERSION=$VERSION API_IMG=$API_IMG
# scratch has no /tmp; the operator writes its webhook certificate there and Go's os.TempDir points there.
RUN mkdir -m 1777 /out/tmp

FROM scratch AS base
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=build /usr/share/zoneinfo /usr/share/zoneinfo
COPY --from=build /out/tmp /tmp
USER 65532:65532

FROM base AS packnow-api
COPY --from=build /out/packnow-api /packnow-api
EXPOSE 8000
ENTRYPOINT ["/packnow-api"]

FROM base AS manager
COPY --from=build /out/manager /manager
ENTRYPOINT ["/manager"]
