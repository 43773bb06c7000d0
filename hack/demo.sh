#!/usr/bin/env bash
# The whole PackNow system on one machine, with no cluster:
#   hack/demo.sh up     (make demo)       a KWOK cluster, the operator, PostgreSQL, Redis and the PackNow API
#   hack/demo.sh tour   (make demo-tour)  what the operator does, shown step by step
#   hack/demo.sh down   (make demo-down)  stop everything and remove the demo's state
# Everything lives under bin/demo; ~/.kube/config is never touched (export KUBECONFIG=bin/demo/kubeconfig).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
state="$root/bin/demo"
cluster=packnow-demo
k8s_bin="$root/bin/k8s/1.37.2-$(go env GOOS)-$(go env GOARCH)"
export KUBECONFIG="$state/kubeconfig"
export KWOK_WORKDIR="$state/kwok"
kubectl="$k8s_bin/kubectl"
ns=demo
# PostgreSQL refuses to run as root and its own user must reach the data directory, so it lives outside the
# checkout, which may sit in a folder only root can enter.
pg_data=${PG_DATA:-${TMPDIR:-/tmp}/packnow-demo-postgres}

# Local ports of the demo's processes; override when one is taken.
WEBHOOK_PORT=${WEBHOOK_PORT:-9443}
PROBE_PORT=${PROBE_PORT:-18081}
PG_PORT=${PG_PORT:-15432}
REDIS_PORT=${REDIS_PORT:-16379}
API_PORT=${API_PORT:-18000}
# The API accepts only the Host names the operator allowed it; the in-cluster Service name is one.
api_host="$ns-api.$ns.svc"
api="http://127.0.0.1:$API_PORT"

started=$SECONDS
step_started=$SECONDS
step() {
  printf '\n\033[1m==> %s\033[0m\n' "$*"
  step_started=$SECONDS
}
done_step() { printf '    done in %ss\n' "$((SECONDS - step_started))"; }
say() { printf '    %s\n' "$*"; }
# show prints a command and its output; a failing command (the denied pod) is part of the story, not an error.
show() { printf '    $ %s\n' "$*"; { "$@" 2>&1 || true; } | sed 's/^/      /'; }

as_postgres() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

pg_bin() { "$(pg_config --bindir)/$1"; }

stop_pidfile() {
  local f=$1
  [ -f "$f" ] || return 0
  local pid
  pid=$(cat "$f")
  if kill -0 "$pid" 2>/dev/null; then
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  fi
  rm -f "$f"
}

wait_http() { # url what
  for _ in $(seq 300); do
    curl -fsS -o /dev/null "$1" 2>/dev/null && return 0
    sleep 0.2
  done
  echo "timed out waiting for $2 ($1)" >&2
  return 1
}

build() {
  step "Building the control plane, KWOK, the operator and the API (once; minutes on a cold Go cache)"
  make -s kubectl kwok >/dev/null
  go build -o bin/manager .
  go build -o bin/packnow-api ./app/cmd/packnow-api
  go build -o bin/demo-tool ./hack/demo
  make -s test-deps
  done_step
}

start_cluster() {
  step "Starting a local cluster: kube-apiserver, etcd, controller-manager, scheduler and KWOK nodes"
  mkdir -p "$state"
  if ! "$root/bin/kwokctl" get clusters 2>/dev/null | grep -qx "$cluster"; then
    "$root/bin/kwokctl" create cluster --name "$cluster" --runtime binary \
      --kubeconfig "$KUBECONFIG" \
      --kube-apiserver-binary "$k8s_bin/kube-apiserver" \
      --etcd-binary "$k8s_bin/etcd" \
      --kube-controller-manager-binary "$k8s_bin/kube-controller-manager" \
      --kube-scheduler-binary "$k8s_bin/kube-scheduler" \
      --kwok-controller-binary "$root/bin/kwok" \
      --wait 120s >"$state/kwokctl.log" 2>&1
  fi
  "$root/bin/kwokctl" get kubeconfig --name "$cluster" >"$KUBECONFIG"
  "$root/bin/kwokctl" scale node --name "$cluster" --replicas 2 >>"$state/kwokctl.log" 2>&1
  say "kubeconfig: $KUBECONFIG"
  done_step
}

install_operator() {
  step "Installing the CRD and the webhook configurations; running the operator on this machine"
  "$kubectl" apply --server-side -f config/crd/bases >/dev/null
  "$kubectl" create namespace packnow-system --dry-run=client -o yaml | "$kubectl" apply -f - >/dev/null
  "$root/bin/demo-tool" webhooks -url "https://localhost:$WEBHOOK_PORT" -prefix packnow-operator- |
    "$kubectl" apply --server-side -f - >/dev/null
  stop_pidfile "$state/manager.pid"
  # The operator manages its own serving certificate (cert-controller) and adds localhost to it, since the API
  # server reaches this process, not a Service.
  "$root/bin/manager" --leader-elect=false --metrics-bind-address=0 \
    --health-probe-bind-address="127.0.0.1:$PROBE_PORT" --webhook-port="$WEBHOOK_PORT" \
    --webhook-cert-dir="$state/webhook-certs" --operator-namespace=packnow-system \
    --webhook-extra-dns-names=localhost --default-api-image=packnow-api:dev \
    >"$state/manager.log" 2>&1 &
  echo $! >"$state/manager.pid"
  wait_http "http://127.0.0.1:$PROBE_PORT/readyz" "the operator's webhook server"
  say "operator log: $state/manager.log"
  done_step
}

start_postgres() {
  step "Starting PostgreSQL and applying the sample PackNowApp"
  local data="$pg_data"
  if [ ! -d "$data" ]; then
    mkdir -p "$data"
    [ "$(id -u)" = 0 ] && chown postgres "$data"
    # Local socket connections are trusted (the demo's own setup); TCP connections, the API's, need the
    # password the operator generated.
    as_postgres "$(pg_config --bindir)/initdb" -D "$data" -U postgres --auth-local=trust \
      --auth-host=scram-sha-256 >"$state/initdb.log" 2>&1
  fi
  if ! as_postgres "$(pg_config --bindir)/pg_ctl" -D "$data" status >/dev/null 2>&1; then
    as_postgres "$(pg_config --bindir)/pg_ctl" -D "$data" -l "$data/server.log" -w \
      -o "-p $PG_PORT -k $data -c listen_addresses=127.0.0.1" start >/dev/null
  fi

  "$kubectl" create namespace "$ns" --dry-run=client -o yaml | "$kubectl" apply -f - >/dev/null
  "$kubectl" label namespace "$ns" packnow.io/pod-security=enforce --overwrite >/dev/null
  "$kubectl" apply -n "$ns" -f config/samples/packnow_v1alpha1_packnowapp.yaml >/dev/null
  # Point the sample at this machine's servers; the operator rebuilds only the URLs, never the passwords.
  "$kubectl" patch -n "$ns" pna demo --type merge -p "{\"spec\": {
    \"database\": {\"host\": \"127.0.0.1\", \"port\": $PG_PORT, \"sslMode\": \"disable\"},
    \"redis\": {\"host\": \"127.0.0.1\", \"port\": $REDIS_PORT}}}" >/dev/null
  "$kubectl" wait -n "$ns" pna/demo --for=condition=SecretsReady --timeout=120s >/dev/null

  local user password db
  user=$("$kubectl" get secret -n "$ns" demo-postgres -o jsonpath='{.data.username}' | base64 -d)
  password=$("$kubectl" get secret -n "$ns" demo-postgres -o jsonpath='{.data.password}' | base64 -d)
  db=$("$kubectl" get pna -n "$ns" demo -o jsonpath='{.spec.database.name}')
  as_postgres "$(pg_config --bindir)/psql" -q -h "$data" -p "$PG_PORT" -U postgres -v ON_ERROR_STOP=1 \
    -v user="$user" -v password="$password" -v db="$db" >/dev/null <<'SQL'
SELECT format('CREATE ROLE %I LOGIN', :'user') WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'user') \gexec
ALTER ROLE :"user" PASSWORD :'password';
SELECT format('CREATE DATABASE %I OWNER %I', :'db', :'user') WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'db') \gexec
SQL
  say "PostgreSQL on 127.0.0.1:$PG_PORT, role $user with the password from Secret demo-postgres"
  done_step
}

start_redis() {
  step "Starting Redis with the password from Secret demo-redis"
  local password
  password=$("$kubectl" get secret -n "$ns" demo-redis -o jsonpath='{.data.password}' | base64 -d)
  stop_pidfile "$state/redis.pid"
  mkdir -p "$state/redis"
  redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no --dir "$state/redis" \
    --requirepass "$password" --daemonize yes --pidfile "$state/redis.pid" --logfile "$state/redis/redis.log"
  for _ in $(seq 50); do [ -s "$state/redis.pid" ] && break; sleep 0.1; done
  say "Redis on 127.0.0.1:$REDIS_PORT"
  done_step
}

# start_api runs the real packnow-api with the environment the operator wrote into the Deployment and its
# Secrets; only the listen address differs, since the pod's :8000 is not this machine's.
start_api() {
  stop_pidfile "$state/api.pid"
  (
    eval "$("$root/bin/demo-tool" app-env -namespace "$ns" -name demo)"
    export LISTEN_ADDR="127.0.0.1:$API_PORT"
    exec "$root/bin/packnow-api" >>"$state/api.log" 2>&1
  ) &
  echo $! >"$state/api.pid"
  wait_http "$api/healthz" "the PackNow API"
}

wait_ready() {
  step "Waiting for the operator: Secrets, Deployment (pods scheduled on KWOK nodes), Service, policies"
  "$kubectl" wait -n "$ns" pna/demo --for=condition=Ready --timeout=180s >/dev/null
  show "$kubectl" get pna -n "$ns"
  show "$kubectl" get deploy,pods,svc,pdb,networkpolicy,secrets -n "$ns"
  done_step
}

up() {
  build
  start_cluster
  install_operator
  start_postgres
  start_redis
  wait_ready
  step "Running the PackNow API with the operator's environment"
  start_api
  show curl -fsS "$api/readyz" -H "Host: $api_host"
  say "API: $api (Host: $api_host), log: $state/api.log"
  done_step
  printf '\n\033[1mThe demo is up in %ss.\033[0m\n' "$((SECONDS - started))"
  tour
  printf '\n\033[1mDone in %ss.\033[0m The system keeps running: KUBECONFIG=%s %s get pna -A; make demo-down stops it.\n' \
    "$((SECONDS - started))" "$KUBECONFIG" "$kubectl"
}

json_field() { # key: reads one string field of a JSON object on stdin
  sed -n "s/.*\"$1\":\"\([^\"]*\)\".*/\1/p"
}

tour() {
  step "kubectl get pna: readiness, replicas, key rotation and URL at a glance"
  show "$kubectl" get pna -n "$ns"

  step "kubectl describe pna demo: conditions and events"
  show "$kubectl" describe pna -n "$ns" demo

  step "A pod running as root is denied at admission, with the field to fix"
  say "namespace $ns is labelled packnow.io/pod-security=enforce"
  show "$kubectl" run root-pod -n "$ns" --image=busybox --restart=Never \
    --overrides='{"spec":{"securityContext":{"runAsUser":0}}}'

  step "Registering and logging in against the running API"
  phone="+14155550$((RANDOM % 900 + 100))"
  curl -fsS -X POST "$api/api/v1/auth/register" -H "Host: $api_host" -H 'Content-Type: application/json' \
    -d "{\"phone\":\"$phone\",\"password\":\"$password\",\"role\":\"user\"}" >/dev/null
  login
  say "logged in as $phone (access and refresh token kept); the access token's kid is the current key's id:"
  show "$kubectl" get pna -n "$ns" demo -o jsonpath='{.status.secretKey.currentKeyID}{"\n"}'
  printf '    $ curl %s/api/v1/users/me -H "Authorization: Bearer <access token>"\n' "$api"
  curl -fsS "$api/api/v1/users/me" -H "Host: $api_host" -H "Authorization: Bearer $access_token" | sed 's/^/      /'
  echo
  done_step

  rotation_tour
}

password='Pack!Now-2026x'

# login signs $phone in and sets access_token and refresh_token.
login() {
  local pair
  pair=$(curl -fsS -X POST "$api/api/v1/auth/login" -H "Host: $api_host" \
    -H 'Content-Type: application/json' -d "{\"phone\":\"$phone\",\"password\":\"$password\"}")
  access_token=$(json_field access_token <<<"$pair")
  refresh_token=$(json_field refresh_token <<<"$pair")
}

pna_field() { "$kubectl" get pna -n "$ns" demo -o jsonpath="$1"; }
template_hash() {
  "$kubectl" get deploy -n "$ns" demo-api -o jsonpath='{.spec.template.metadata.annotations.packnow\.io/secret-key-hash}'
}
hash_changed() { new_hash=$(template_hash) && [ "$new_hash" != "$1" ]; }
phase_is() { [ "$(pna_field '{.status.secretKey.phase}')" = "$1" ]; }
no_previous_key() {
  [ -z "$("$kubectl" get secret -n "$ns" demo-secret-key -o jsonpath='{.data.SECRET_KEY_PREVIOUS}')" ]
}
retired() { no_previous_key && phase_is Stable; }

wait_for() { # what timeout-seconds command...: runs command until it succeeds
  local what=$1 end=$((SECONDS + $2))
  shift 2
  until "$@"; do
    if [ "$SECONDS" -ge "$end" ]; then
      echo "timed out waiting for $what" >&2
      return 1
    fi
    sleep 0.5
  done
}

key_status() {
  say "phase $(pna_field '{.status.secretKey.phase}'), currentKeyID $(pna_field '{.status.secretKey.currentKeyID}'), pod template secret-key-hash $(template_hash | cut -c1-12)..."
}

# me shows GET /api/v1/users/me with a token and its HTTP status, and fails unless the status is want.
me() { # label token want
  local code
  code=$(curl -s -o /dev/null -w '%{http_code}' "$api/api/v1/users/me" -H "Host: $api_host" -H "Authorization: Bearer $2")
  printf '    $ curl %s/api/v1/users/me -H "Authorization: Bearer <%s>"\n      HTTP %s\n' "$api" "$1" "$code"
  if [ "$code" != "$3" ]; then
    echo "unexpected: HTTP $code with the $1, want $3" >&2
    return 1
  fi
}

# hash is the pod template's secret-key hash the local API last started with.
hash=
# next_rollout waits for the operator's next rotation step to reach the pod template, then restarts the local
# API with the new environment, as the Deployment's rollout does to its pods.
next_rollout() { # hash before
  wait_for "a new secret-key-hash on the pod template" 180 hash_changed "$1"
  hash=$new_hash
  say "the pod template's packnow.io/secret-key-hash changed: the Deployment rolls; restarting the local API"
  start_api
}

rotation_tour() {
  local old_access response code
  step "Rotating SECRET_KEY by hand: stage"
  old_access=$access_token
  hash=$(template_hash)
  key_status
  say "KWOK pods are Ready at once, so the promote would follow the stage within a second: the demo pauses the"
  say "Deployment's rollouts to show the staged state; the operator promotes only once the stage has rolled out"
  show "$kubectl" rollout pause -n "$ns" deploy/demo-api
  show "$kubectl" annotate pna -n "$ns" demo "packnow.io/rotate-secret-key=demo-$(date +%s%N)" --overwrite
  next_rollout "$hash"
  wait_for "phase Staged" 60 phase_is Staged
  key_status
  say "the new key is staged: the API verifies with it, signs with the old one; the pre-rotation token works:"
  me "pre-rotation access token" "$old_access" 200
  show "$kubectl" get pna -n "$ns" demo -o jsonpath='{.status.conditions[?(@.type=="KeyRotation")].message}{"\n"}'
  done_step

  step "Rotation: promote, once every pod verifies with the staged key"
  show "$kubectl" rollout resume -n "$ns" deploy/demo-api
  next_rollout "$hash"
  wait_for "phase Promoted" 60 phase_is Promoted
  key_status
  say "the staged key signs now; the previous key keeps verifying, so the pre-rotation token still works:"
  me "pre-rotation access token" "$old_access" 200
  say "the pre-rotation refresh token still refreshes the session, to tokens signed with the new key:"
  printf '    $ curl -X POST %s/api/v1/auth/refresh -d {"refresh_token":"<pre-rotation refresh token>"}\n' "$api"
  response=$(curl -s -X POST "$api/api/v1/auth/refresh" -H "Host: $api_host" -H 'Content-Type: application/json' \
    -d "{\"refresh_token\":\"$refresh_token\"}" -w '\n%{http_code}')
  code=${response##*$'\n'}
  printf '      HTTP %s\n' "$code"
  if [ "$code" != 200 ]; then
    echo "unexpected: HTTP $code refreshing the pre-rotation refresh token, want 200" >&2
    return 1
  fi
  refresh_token=$(json_field refresh_token <<<"${response%$'\n'*}")
  refreshed_access=$(json_field access_token <<<"${response%$'\n'*}")
  done_step

  step "Rotation: retire the previous key at once (packnow.io/retire-previous-key, for a compromised key)"
  say "normally the previous key goes refreshTokenTTL + accessTokenTTL after the promotion; the emergency retire"
  say "waits only for the promote rollout, and logs out the sessions still signed with the old key"
  show "$kubectl" annotate pna -n "$ns" demo "packnow.io/retire-previous-key=demo-$(date +%s%N)" --overwrite
  wait_for "SECRET_KEY_PREVIOUS gone and phase Stable" 180 retired
  wait_for "the retire on the pod template" 60 hash_changed "$hash"
  say "Secret demo-secret-key holds only SECRET_KEY; restarting the local API as the rollout does"
  start_api
  key_status
  me "pre-rotation access token" "$old_access" 401
  say "the access token refreshed after the promotion was signed with the new key and still works:"
  me "refreshed access token" "$refreshed_access" 200
  login
  say "a fresh login works:"
  me "new access token" "$access_token" 200
  show "$kubectl" get events -n "$ns" --field-selector reason=KeyRetiredEarly
  done_step
}

down() {
  step "Stopping the API, the operator, Redis, PostgreSQL and the cluster"
  stop_pidfile "$state/api.pid"
  stop_pidfile "$state/manager.pid"
  stop_pidfile "$state/redis.pid"
  if [ -d "$pg_data" ]; then
    as_postgres "$(pg_config --bindir)/pg_ctl" -D "$pg_data" -m fast stop >/dev/null 2>&1 || true
    rm -rf "$pg_data"
  fi
  if [ -x "$root/bin/kwokctl" ]; then
    "$root/bin/kwokctl" delete cluster --name "$cluster" --kubeconfig "$KUBECONFIG" >/dev/null 2>&1 || true
  fi
  rm -rf "$state"
  done_step
}

case "${1:-up}" in
  up) up ;;
  tour) tour ;;
  down) down ;;
  *) echo "usage: $0 up|tour|down" >&2; exit 2 ;;
esac
