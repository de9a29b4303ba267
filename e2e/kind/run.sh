#!/usr/bin/env bash
# The end-to-end suite (e2e/platform) on a kind cluster: what CI runs where a Docker engine exists.
#
#   e2e/kind/run.sh [OPTIONS] [-- PYTEST_ARGS...]
#
#   --keep            leave the cluster running at the end (default: delete the cluster this run created)
#   --reuse           reuse a cluster this checkout created earlier (kept with --keep) instead of recreating it
#   --no-build        do not build the images: load the ones Docker already has (checkout-platform/*:TAG)
#   --builder NAME    build with `docker` (default) or `skaffold` (`skaffold build -p kind`, skaffold.yaml)
#   --delete          delete the cluster (only if this checkout created it) and exit
#   -h, --help        this text
#
# Steps: check the tools; create the kind cluster `checkout-e2e` from e2e/kind/cluster.yaml and mark it as
# ours (a random token in $RUN_DIR/cluster-token and in the ConfigMap kube-system/checkout-e2e-owner);
# install the Strimzi and CloudNativePG operators, Jaeger and Prometheus; build the seven images and load
# them into the node; start one Kafka (KRaft) and one PostgreSQL; then run `uv run pytest e2e/platform`
# with the environment described in e2e/kind/README.md. A cluster of that name that this checkout did not
# create is never touched.
#
# Environment: E2E_KIND_RUN_DIR (default .run/kind: kubeconfig, token, logs), E2E_IMAGE_TAG (default e2e),
# E2E_KIND_WAIT (default 600s: each readiness wait).
set -euo pipefail

ROOT=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/../.." && pwd)
KIND_DIR=$ROOT/e2e/kind
CLUSTER=checkout-e2e
CONTEXT=kind-$CLUSTER
OWNER_CONFIGMAP=checkout-e2e-owner
OWNER_MARK=checkout-platform-e2e
RUN_DIR=${E2E_KIND_RUN_DIR:-$ROOT/.run/kind}
LOG_DIR=$RUN_DIR/logs
KUBECONFIG_FILE=$RUN_DIR/kubeconfig
TOKEN_FILE=$RUN_DIR/cluster-token
IMAGE_TAG=${E2E_IMAGE_TAG:-e2e}
WAIT=${E2E_KIND_WAIT:-600s}

# Pinned versions of what this script installs (the node image is pinned in cluster.yaml).
KIND_VERSION=v0.30.0
STRIMZI_VERSION=0.50.0
STRIMZI_CHART_REPO=https://strimzi.io/charts/
CNPG_VERSION=1.28.4
CNPG_MANIFEST=https://raw.githubusercontent.com/cloudnative-pg/cloudnative-pg/release-${CNPG_VERSION%.*}/releases/cnpg-${CNPG_VERSION}.yaml

# The images the suite runs, "<name> <Dockerfile>": each is built from the repository root as
# checkout-platform/<name>:$IMAGE_TAG. This is the one list of them in this script; skaffold.yaml has the
# same artifacts and e2e/kind/tests/test_kind_files.py keeps the two, the Dockerfiles and the charts equal.
IMAGES=(
  "gateway-bff services/gateway-bff/Dockerfile"
  "checkout-orchestrator services/checkout-orchestrator/Dockerfile"
  "inventory services/inventory/Dockerfile"
  "payment services/payment/Dockerfile"
  "order services/order/Dockerfile"
  "cart services/cart/Dockerfile"
  "checkout-operator checkout-operator/Dockerfile"
)

# Where the suite reaches what this script installs (cluster.yaml maps the host ports).
KAFKA_BOOTSTRAP=e2e-kafka-bootstrap.kafka.svc:9092
KAFKA_HOST_BOOTSTRAP=127.0.0.1:30050
POSTGRES_HOST=checkout-pg-rw.postgres.svc
POSTGRES_PORT=5432
POSTGRES_DATABASE=checkout
POSTGRES_SUPERUSER_SECRET=checkout-pg-superuser
OTLP_ENDPOINT=http://jaeger.observability.svc:4318
JAEGER_QUERY_URL=http://127.0.0.1:30066
PROMETHEUS_URL=http://127.0.0.1:30070

KEEP=0
REUSE=0
DELETE=0
BUILD=1
BUILDER=docker
CREATED=0
CLUSTER_UP=0
PORT_FORWARD_PID=

step() { printf '[%4ds] %s\n' "$SECONDS" "$*"; }
fail() {
  printf 'e2e/kind/run.sh: error: %s\n' "$*" >&2
  exit 1
}
usage() { sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed -e '$d' -e 's/^# \{0,1\}//'; }

# need TOOL PURPOSE HINT: fail naming the missing tool, what it is for and how to get it.
need() {
  command -v "$1" >/dev/null 2>&1 || fail "$1 is not on PATH: it is needed to $2. $3"
}

# retry ATTEMPTS DELAY_S COMMAND...: run COMMAND until it succeeds, at most ATTEMPTS times.
retry() {
  local attempts=$1 delay=$2 n=1
  shift 2
  until "$@"; do
    ((n >= attempts)) && return 1
    n=$((n + 1))
    sleep "$delay"
  done
}

# run_logged LOG COMMAND...: run COMMAND with its output in LOG; on failure show the log's tail and fail.
run_logged() {
  local log=$1
  shift
  if ! "$@" >"$log" 2>&1; then
    tail -n 30 "$log" >&2 || true
    fail "\`$*\` failed; its output is in $log"
  fi
}

cluster_exists() {
  local clusters
  clusters=$(kind get clusters 2>&1) || fail "\`kind get clusters\` failed (is Docker running?): $clusters"
  grep -qx "$CLUSTER" <<<"$clusters"
}

# Ours: the owner ConfigMap names us and holds the token this checkout wrote when it created the cluster.
cluster_is_ours() {
  [[ -s $TOKEN_FILE ]] || return 1
  kind export kubeconfig --name "$CLUSTER" --kubeconfig "$KUBECONFIG_FILE" >/dev/null 2>&1 || return 1
  local owner
  owner=$(kubectl --kubeconfig "$KUBECONFIG_FILE" --context "$CONTEXT" -n kube-system get configmap \
    "$OWNER_CONFIGMAP" -o 'jsonpath={.data.createdBy} {.data.token}' 2>/dev/null) || return 1
  [[ $owner == "$OWNER_MARK $(<"$TOKEN_FILE")" ]]
}

refuse_foreign_cluster() {
  fail "a kind cluster named $CLUSTER exists that this checkout did not create (no ConfigMap" \
    "kube-system/$OWNER_CONFIGMAP holding the token in $TOKEN_FILE); it is left alone. If it is yours to" \
    "delete: kind delete cluster --name $CLUSTER"
}

mark_cluster() {
  local token
  token=$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n')
  (
    umask 077
    printf '%s' "$token" >"$TOKEN_FILE"
  )
  kubectl -n kube-system create configmap "$OWNER_CONFIGMAP" \
    --from-literal=createdBy="$OWNER_MARK" --from-literal=token="$token" >/dev/null
}

collect_diagnostics() {
  step "collecting diagnostics into $LOG_DIR"
  kubectl get events -A --sort-by=.lastTimestamp >"$LOG_DIR/events.txt" 2>&1 || true
  kubectl get all -A -o wide >"$LOG_DIR/resources.txt" 2>&1 || true
  kubectl describe pods -A >"$LOG_DIR/pods-describe.txt" 2>&1 || true
  kubectl get kafka,kafkanodepool -n kafka -o yaml >"$LOG_DIR/kafka.yaml" 2>&1 || true
  kubectl get clusters.postgresql.cnpg.io -n postgres -o yaml >"$LOG_DIR/postgres.yaml" 2>&1 || true
  kubectl get checkoutplatforms -A -o yaml >"$LOG_DIR/checkoutplatforms.yaml" 2>&1 || true
  kind export logs "$LOG_DIR/kind" --name "$CLUSTER" >/dev/null 2>&1 || true
}

cleanup() {
  local status=$?
  trap - EXIT INT TERM
  if [[ -n $PORT_FORWARD_PID ]]; then
    kill "$PORT_FORWARD_PID" 2>/dev/null || true
    wait "$PORT_FORWARD_PID" 2>/dev/null || true
  fi
  if ((status != 0 && CLUSTER_UP)); then
    collect_diagnostics
  fi
  if ((CREATED && !KEEP)); then
    step "deleting the cluster $CLUSTER (--keep leaves it)"
    kind delete cluster --name "$CLUSTER" --kubeconfig "$KUBECONFIG_FILE" >"$LOG_DIR/kind-delete.log" 2>&1 ||
      printf 'e2e/kind/run.sh: kind delete cluster failed; see %s\n' "$LOG_DIR/kind-delete.log" >&2
    rm -f "$TOKEN_FILE"
  elif ((CLUSTER_UP)); then
    step "the cluster $CLUSTER is kept: export KUBECONFIG=$KUBECONFIG_FILE; delete it with e2e/kind/run.sh --delete"
  fi
  step "finished (exit $status)"
  exit "$status"
}

# wait_http NAME URL: wait until URL answers 2xx from the host.
wait_http() {
  local deadline=$((SECONDS + ${WAIT%s}))
  until curl -fsS --max-time 2 -o /dev/null "$2" 2>/dev/null; do
    ((SECONDS < deadline)) || fail "$1 does not answer at $2 from the host (is the port mapped? see cluster.yaml)"
    sleep 2
  done
}

start_postgres_port_forward() {
  local log=$LOG_DIR/port-forward-postgres.log port=
  kubectl -n postgres port-forward --address 127.0.0.1 "svc/${POSTGRES_HOST%%.*}" ":$POSTGRES_PORT" >"$log" 2>&1 &
  PORT_FORWARD_PID=$!
  for _ in $(seq 1 120); do
    port=$(sed -n "s/^Forwarding from 127\.0\.0\.1:\([0-9]*\) -> $POSTGRES_PORT\$/\1/p" "$log" | head -n 1)
    [[ -n $port ]] && break
    kill -0 "$PORT_FORWARD_PID" 2>/dev/null || fail "kubectl port-forward to PostgreSQL exited; see $log"
    sleep 0.5
  done
  [[ -n $port ]] || fail "kubectl port-forward to PostgreSQL did not report its port within 60 s; see $log"
  POSTGRES_HOST_PORT=$port
}

secret_field() {
  kubectl -n postgres get secret "$POSTGRES_SUPERUSER_SECRET" -o "jsonpath={.data.$1}" | base64 -d
}

urlencode() { uv run --no-project --quiet python -c 'import sys, urllib.parse; print(urllib.parse.quote(sys.argv[1], safe=""))' "$1"; }

# --- options ------------------------------------------------------------------------------------------------
while (($#)); do
  case $1 in
    --keep) KEEP=1 ;;
    --reuse) REUSE=1 ;;
    --no-build) BUILD=0 ;;
    --delete) DELETE=1 ;;
    --builder)
      (($# >= 2)) || fail "--builder needs a value: docker or skaffold"
      BUILDER=$2
      shift
      ;;
    --builder=*) BUILDER=${1#*=} ;;
    -h | --help)
      usage
      exit 0
      ;;
    --)
      shift
      break
      ;;
    *) fail "unknown option '$1' (pytest arguments go after --; see --help)" ;;
  esac
  shift
done
[[ $BUILDER == docker || $BUILDER == skaffold ]] || fail "--builder is docker or skaffold, not '$BUILDER'"

mkdir -p "$LOG_DIR"
chmod 700 "$RUN_DIR"
cd "$ROOT"

need kind "create and delete the kind cluster" "Install kind $KIND_VERSION: go install sigs.k8s.io/kind@$KIND_VERSION"
need kubectl "talk to the cluster" "Install kubectl 1.34 (within one minor version of the cluster's Kubernetes)."

if ((DELETE)); then
  if ! cluster_exists; then
    step "no kind cluster named $CLUSTER: nothing to delete"
  elif cluster_is_ours; then
    step "deleting the cluster $CLUSTER"
    kind delete cluster --name "$CLUSTER" --kubeconfig "$KUBECONFIG_FILE"
    rm -f "$TOKEN_FILE"
  else
    refuse_foreign_cluster
  fi
  exit 0
fi

# --- 0. tools -----------------------------------------------------------------------------------------------
need docker "build the images and run the kind node" "Install Docker Engine and start it."
docker info >/dev/null 2>&1 || fail "docker is installed but its daemon does not answer (\`docker info\` failed): start Docker and retry"
need helm "install the Strimzi operator chart" "Install helm 3: go install helm.sh/helm/v3/cmd/helm@v3.22.0"
need uv "run the pytest suite" "Install uv (the project's Python tool)."
need curl "check the host ports of Jaeger and Prometheus" "Install curl."
if [[ $BUILDER == skaffold ]]; then
  need skaffold "build the images with --builder skaffold" "Install skaffold v2.12 or newer, or use --builder docker."
fi
kind_version=$(kind version 2>/dev/null | awk '{print $2}')
[[ $kind_version == "$KIND_VERSION" ]] ||
  step "warning: kind $kind_version is not the pinned $KIND_VERSION; the node image in cluster.yaml was built for $KIND_VERSION"
step "tools: docker, kind $kind_version, kubectl, helm, uv; run directory $RUN_DIR"

# --- 1. the cluster -----------------------------------------------------------------------------------------
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if cluster_exists; then
  cluster_is_ours || refuse_foreign_cluster
  if ((REUSE)); then
    step "reusing the cluster $CLUSTER this checkout created"
    CLUSTER_UP=1
  else
    step "deleting the cluster $CLUSTER left by an earlier run (--reuse keeps it)"
    run_logged "$LOG_DIR/kind-delete.log" kind delete cluster --name "$CLUSTER" --kubeconfig "$KUBECONFIG_FILE"
    rm -f "$TOKEN_FILE"
  fi
fi
export KUBECONFIG=$KUBECONFIG_FILE
if ((!CLUSTER_UP)); then
  step "creating the kind cluster $CLUSTER from e2e/kind/cluster.yaml"
  CREATED=1
  run_logged "$LOG_DIR/kind-create.log" kind create cluster --name "$CLUSTER" --config "$KIND_DIR/cluster.yaml" \
    --kubeconfig "$KUBECONFIG_FILE" --wait 180s
  CLUSTER_UP=1
  mark_cluster
  step "cluster marked: kube-system/$OWNER_CONFIGMAP, token in $TOKEN_FILE"
fi
kubectl config use-context "$CONTEXT" >/dev/null

# --- 2. operators and observability (they start while the images build) ------------------------------------
step "installing Strimzi $STRIMZI_VERSION (helm chart) into the namespace kafka"
run_logged "$LOG_DIR/strimzi-install.log" helm upgrade --install strimzi strimzi-kafka-operator \
  --repo "$STRIMZI_CHART_REPO" --version "$STRIMZI_VERSION" --namespace kafka --create-namespace
step "installing CloudNativePG $CNPG_VERSION (release manifest)"
run_logged "$LOG_DIR/cnpg-install.log" retry 3 5 kubectl apply --server-side --force-conflicts -f "$CNPG_MANIFEST"
step "installing Jaeger and Prometheus into the namespace observability"
for namespace in observability postgres; do
  kubectl create namespace "$namespace" --dry-run=client -o yaml | kubectl apply -f - >/dev/null
done
run_logged "$LOG_DIR/observability-apply.log" kubectl apply -f "$KIND_DIR/jaeger.yaml" -f "$KIND_DIR/prometheus.yaml"
if ((REUSE)); then
  kubectl -n observability rollout restart deployment/prometheus >/dev/null
fi

# --- 3. images ----------------------------------------------------------------------------------------------
refs=()
for entry in "${IMAGES[@]}"; do
  refs+=("checkout-platform/${entry%% *}:$IMAGE_TAG")
done
if ((BUILD)) && [[ $BUILDER == skaffold ]]; then
  step "building ${#IMAGES[@]} images with skaffold (profile kind, tag $IMAGE_TAG)"
  run_logged "$LOG_DIR/skaffold-build.log" skaffold build -p kind --tag "$IMAGE_TAG" --kube-context "$CONTEXT" \
    --file-output "$RUN_DIR/skaffold-build.json"
elif ((BUILD)); then
  for entry in "${IMAGES[@]}"; do
    name=${entry%% *}
    dockerfile=${entry#* }
    step "building checkout-platform/$name:$IMAGE_TAG from $dockerfile"
    run_logged "$LOG_DIR/build-$name.log" env DOCKER_BUILDKIT=1 docker build --file "$ROOT/$dockerfile" \
      --tag "checkout-platform/$name:$IMAGE_TAG" "$ROOT"
  done
fi
step "loading ${#refs[@]} images into the kind node"
run_logged "$LOG_DIR/kind-load.log" kind load docker-image --name "$CLUSTER" "${refs[@]}"

# --- 4. Kafka, PostgreSQL, and everything ready -------------------------------------------------------------
step "waiting for the Strimzi and CloudNativePG operators"
run_logged "$LOG_DIR/strimzi-ready.log" kubectl -n kafka rollout status deployment/strimzi-cluster-operator \
  --timeout="$WAIT"
run_logged "$LOG_DIR/cnpg-ready.log" kubectl -n cnpg-system rollout status deployment/cnpg-controller-manager \
  --timeout="$WAIT"
step "starting Kafka (e2e/kind/kafka.yaml) and PostgreSQL (e2e/kind/postgres.yaml)"
# The operators' admission webhooks may need a few seconds after their rollout before they answer.
run_logged "$LOG_DIR/kafka-apply.log" retry 12 5 kubectl apply -f "$KIND_DIR/kafka.yaml"
run_logged "$LOG_DIR/postgres-apply.log" retry 12 5 kubectl apply -f "$KIND_DIR/postgres.yaml"
step "waiting for Jaeger and Prometheus"
run_logged "$LOG_DIR/jaeger-ready.log" kubectl -n observability rollout status deployment/jaeger --timeout="$WAIT"
run_logged "$LOG_DIR/prometheus-ready.log" kubectl -n observability rollout status deployment/prometheus \
  --timeout="$WAIT"
step "waiting for Kafka to be Ready"
run_logged "$LOG_DIR/kafka-ready.log" kubectl -n kafka wait kafka/e2e --for=condition=Ready --timeout="$WAIT"
step "waiting for PostgreSQL to be Ready"
run_logged "$LOG_DIR/postgres-ready.log" kubectl -n postgres wait clusters.postgresql.cnpg.io/checkout-pg \
  --for=condition=Ready --timeout="$WAIT"
wait_http Jaeger "$JAEGER_QUERY_URL/"
wait_http Prometheus "$PROMETHEUS_URL/-/ready"
start_postgres_port_forward
step "PostgreSQL forwarded to 127.0.0.1:$POSTGRES_HOST_PORT (until this script exits)"

# --- 5. the suite -------------------------------------------------------------------------------------------
postgres_user=$(secret_field username)
postgres_password=$(secret_field password)
[[ -n $postgres_user && -n $postgres_password ]] ||
  fail "the Secret postgres/$POSTGRES_SUPERUSER_SECRET has no username or password (is enableSuperuserAccess set?)"
host_dsn="postgresql://$(urlencode "$postgres_user"):$(urlencode "$postgres_password")"
host_dsn+="@127.0.0.1:$POSTGRES_HOST_PORT/$POSTGRES_DATABASE"
export E2E_TARGET=kind
export KUBECONFIG=$KUBECONFIG_FILE
export E2E_CLUSTER_TOKEN_FILE=$TOKEN_FILE
export E2E_IMAGE_TAG=$IMAGE_TAG
export E2E_KAFKA_BOOTSTRAP=$KAFKA_BOOTSTRAP
export E2E_KAFKA_HOST_BOOTSTRAP=$KAFKA_HOST_BOOTSTRAP
export E2E_POSTGRES_HOST=$POSTGRES_HOST
export E2E_POSTGRES_PORT=$POSTGRES_PORT
export E2E_POSTGRES_DATABASE=$POSTGRES_DATABASE
export E2E_POSTGRES_USER=$postgres_user
export E2E_POSTGRES_PASSWORD=$postgres_password
export E2E_POSTGRES_HOST_DSN=$host_dsn
export E2E_OTLP_ENDPOINT=$OTLP_ENDPOINT
export E2E_JAEGER_QUERY_URL=$JAEGER_QUERY_URL
export E2E_PROMETHEUS_URL=$PROMETHEUS_URL

step "running: uv run pytest e2e/platform $*"
uv run pytest e2e/platform "$@"
