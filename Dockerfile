# syntax=docker/dockerfile:1
#
# billflow's two programs in one small image:
#   /usr/local/bin/worker    (default command) hosts workflows and activities
#   /usr/local/bin/starter   the operator CLI
# docker-compose.yml builds it for the worker replicas and the starter.

FROM golang:1.26-bookworm AS build
WORKDIR /src
# Static binaries: the runtime image has no libc.
ENV CGO_ENABLED=0
# Modules first, keyed on go.mod/go.sum only, so code edits reuse them.
RUN --mount=type=bind,source=go.mod,target=go.mod \
    --mount=type=bind,source=go.sum,target=go.sum \
    --mount=type=cache,target=/go/pkg/mod \
    go mod download
# The sources are bind-mounted rather than copied: nothing from the build
# context (e.g. a developer's .data/ with its secret key) lands in a layer.
RUN --mount=type=bind,target=. \
    --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    go build -trimpath -buildvcs=false -ldflags='-s -w' -o /out/worker ./worker && \
    go build -trimpath -buildvcs=false -ldflags='-s -w' -o /out/starter ./starter && \
    go build -trimpath -buildvcs=false -ldflags='-s -w' -o /out/api ./api/cmd/api

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/worker /out/starter /out/api /usr/local/bin/
COPY config/plans.json /etc/billflow/plans.json
ENV BILLFLOW_PLANS=/etc/billflow/plans.json
COPY config/services.json /etc/billflow/services.json
ENV BILLFLOW_SERVICES=/etc/billflow/services.json
USER nonroot:nonroot
CMD ["/usr/local/bin/worker"]
