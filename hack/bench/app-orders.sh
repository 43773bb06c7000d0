#!/usr/bin/env bash
# Benchmark of the PackNow API: builds packnow-api, starts throwaway PostgreSQL and redis-server,
# and drives authenticated GET /api/v1/orders through the full middleware stack.
# Usage: hack/bench/app-orders.sh [-clients N] [-duration 15s] [-orders 20]
# Needs PostgreSQL and redis-server (make test-deps). The load generator shares the machine with
# the server, so figures are a floor, not a capacity.
set -euo pipefail
cd "$(dirname "$0")/../.."
mkdir -p bin
go build -o bin/packnow-api ./app/cmd/packnow-api
go run ./hack/bench/appload -bin bin/packnow-api "$@"
