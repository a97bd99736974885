#!/usr/bin/env bash
# make kind-test: prove on a laptop with Docker that the release deploys on Kubernetes and that
# tripclick_daily_pipeline runs there end to end, before a change reaches the EC2 host.
#
#   scripts/kind-test.sh               all steps below; the cluster is kept (reused next time)
#   scripts/kind-test.sh --preflight   step 1 only: exit 0 when everything is there, 3 when not
#   scripts/kind-test.sh --dev-values DIR   only step 4's generated files (certificates, secrets input)
#   make kind-down                     delete the cluster
#
# Exit status: 0 passed, 3 cannot run here (the reason is printed, starting "SKIP:"), other = failed
# (then `kubectl describe` and the logs of the failing pods, and the failed tasks' logs, are printed).
# Settings (environment): KIND_TEST_DATE (default 2020-06-01), KIND_TEST_PORT and KIND_TEST_PG_PORT
# (local ports of the api-server and gold-database port-forwards, default 18080 and 15432),
# KIND_CLUSTER (default tripclick).
#
# The numbered "# step N:" lines are the step list; docs/testing.md "Test on Kubernetes locally" repeats them
# word for word and tests/kind checks that the two agree.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
KIND_DIR=$REPO/scripts/kind
STATE=$REPO/.state/kind
CLUSTER=${KIND_CLUSTER:-tripclick}
CONTEXT=kind-$CLUSTER
NS=airflow
RELEASE=tripclick
STANDINS=tripclick-standins
DAY=${KIND_TEST_DATE:-2020-06-01}
PORT=${KIND_TEST_PORT:-18080}
PG_PORT=${KIND_TEST_PG_PORT:-15432}
PY=${PY:-$REPO/.venv/bin/python}
SKIP=3

# Oldest versions this was written for. kind: the node image below is built for kind v0.33.0
# (node images are tied to the kind release that built them). kubectl: within one minor of the node.
KIND_MIN=0.33.0
KUBECTL_MIN=1.33.0
HELM_MIN=3.15.0
DOCKER_MIN=20.10.0
NODE_IMAGE=$(sed -n 's/^ *image: *\(kindest\/node:[^ ]*\).*/\1/p' "$KIND_DIR/cluster.yaml")
# The producer stand-in's base on a machine that can pull (workloads/producer/Dockerfile takes BASE_IMAGE).
PRODUCER_BASE_IMAGE=python:3.12.8-slim-bookworm
PRODUCER_IMAGE=tripclick-producer:kind-test
PF_PID=
PF_GOLD_PID=

say() { printf '\n== %s\n' "$*"; }
die() { printf 'kind-test: ERROR: %s\n' "$*" >&2; exit 1; }
kc() { kubectl --context "$CONTEXT" "$@"; }

version_ge() { # version_ge <have> <need>
  [ "$(printf '%s\n%s\n' "$2" "$1" | sort -V | head -n1)" = "$2" ]
}

tool_version() { # prints the bare version (1.2.3) a tool reports, or nothing
  local out
  case $1 in
    docker) out=$(docker version --format '{{.Client.Version}}' 2>/dev/null) ;;
    kind) out=$(kind version 2>/dev/null) ;;
    kubectl) out=$(kubectl version --client 2>/dev/null | head -n1) ;;
    helm) out=$(helm version --template '{{.Version}}' 2>/dev/null) ;;
  esac
  printf '%s\n' "$out" | grep -oE '[0-9]+\.[0-9]+\.[0-9]+' | head -n1
}

install_hint() {
  case $1 in
    docker) echo "Docker Engine $DOCKER_MIN+ (https://docs.docker.com/engine/install/, or Debian's docker.io)" ;;
    kind) echo "kind v$KIND_MIN+ (https://kind.sigs.k8s.io/docs/user/quick-start/#installation)" ;;
    kubectl) echo "kubectl v$KUBECTL_MIN+ (https://kubernetes.io/docs/tasks/tools/)" ;;
    helm) echo "helm v$HELM_MIN+ (https://helm.sh/docs/intro/install/)" ;;
    openssl) echo "openssl (Debian package openssl)" ;;
    ssh-keygen) echo "ssh-keygen (Debian package openssh-client)" ;;
    git | make | curl) echo "$1 (Debian package $1)" ;;
  esac
}

preflight() {
  local missing=() old=() tool have need
  for tool in docker kind kubectl helm; do
    if ! command -v "$tool" >/dev/null 2>&1; then
      missing+=("$tool")
      continue
    fi
    have=$(tool_version "$tool")
    case $tool in
      docker) need=$DOCKER_MIN ;; kind) need=$KIND_MIN ;; kubectl) need=$KUBECTL_MIN ;; helm) need=$HELM_MIN ;;
    esac
    if [ -z "$have" ] || ! version_ge "$have" "$need"; then
      old+=("$tool ${have:-(version unreadable)} is older than $need: install $(install_hint "$tool")")
    else
      echo "  $tool $have"
    fi
  done
  for tool in openssl ssh-keygen git make curl; do
    command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
  done
  if [ ! -x "$PY" ]; then
    echo "SKIP: no project virtualenv at $PY: run \`make venv\` first"
    exit $SKIP
  fi
  if [ ${#missing[@]} -gt 0 ] || [ ${#old[@]} -gt 0 ]; then
    if [ ${#missing[@]} -gt 0 ]; then
      echo "SKIP: make kind-test needs a machine with docker, kind, kubectl and helm; missing here: ${missing[*]}"
      for tool in "${missing[@]}"; do echo "  install $(install_hint "$tool")"; done
    else
      echo "SKIP: make kind-test needs newer tools"
    fi
    for line in "${old[@]}"; do echo "  $line"; done
    exit $SKIP
  fi
  if ! docker info >/dev/null 2>&1; then
    echo "SKIP: the Docker daemon does not answer (\`docker info\` failed): start Docker, or add your user to the docker group"
    exit $SKIP
  fi
  if ! docker image inspect "$NODE_IMAGE" >/dev/null 2>&1; then
    if [ "${1:-}" = only ]; then
      echo "  kind node image $NODE_IMAGE not present yet; the full run pulls it"
    elif ! docker pull "$NODE_IMAGE"; then
      echo "SKIP: no kind node image: $NODE_IMAGE is not present and cannot be pulled (no registry reachable)"
      exit $SKIP
    fi
  fi
}

dump_diagnostics() {
  echo
  echo "===================== kind-test failed: diagnostics ====================="
  local ns pod
  for ns in "$NS" "$STANDINS"; do
    kc -n "$ns" get pods -o wide || true
    # Pods that are not Running/Succeeded, or are running but not ready, or have restarted.
    for pod in $(kc -n "$ns" get pods -o jsonpath='{range .items[*]}{.metadata.name}{" "}{.status.phase}{" "}{.status.containerStatuses[*].ready}{" "}{.status.containerStatuses[*].restartCount}{"\n"}{end}' 2>/dev/null |
      awk '$2 == "Succeeded" {next} $2 != "Running" || / false/ || $0 ~ / [1-9][0-9]*( |$)/ {print $1}'); do
      echo "----- kubectl describe pod -n $ns $pod"
      kc -n "$ns" describe pod "$pod" || true
      echo "----- kubectl logs -n $ns $pod (all containers, last 200 lines)"
      kc -n "$ns" logs "$pod" --all-containers --prefix --tail=200 || true
      kc -n "$ns" logs "$pod" --all-containers --prefix --tail=100 --previous 2>/dev/null || true
    done
    echo "----- events in $ns"
    kc -n "$ns" get events --sort-by=.lastTimestamp 2>/dev/null | tail -n 40 || true
  done
}

on_exit() {
  local rc=$?
  local pid
  for pid in $PF_PID $PF_GOLD_PID; do kill "$pid" 2>/dev/null || true; done
  if [ "$rc" -ne 0 ] && [ "$rc" -ne "$SKIP" ] && kind get clusters 2>/dev/null | grep -qx "$CLUSTER"; then
    dump_diagnostics
  fi
  exit "$rc"
}

wait_rollouts() { # wait_rollouts <namespace> [selector]
  local ns=$1 selector=${2:-} obj
  for obj in $(kc -n "$ns" get deployments,statefulsets ${selector:+-l "$selector"} -o name); do
    kc -n "$ns" rollout status "$obj" --timeout=10m
  done
}

apply_secret() { # apply_secret <namespace> <name> <kubectl create secret generic args...>
  local ns=$1 name=$2
  shift 2
  kc -n "$ns" create secret generic "$name" "$@" --dry-run=client -o yaml | kc apply -f -
}

dev_certificates() { # our own CA, one server certificate naming both Docker hosts, one client certificate
  local tls=$STATE/tls
  [ -s "$tls/client-key.pem" ] && return 0
  mkdir -p "$tls"
  chmod 700 "$tls"
  openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj "/CN=tripclick kind-test CA" \
    -keyout "$tls/ca-key.pem" -out "$tls/ca.pem" 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -subj "/CN=docker-hosts" \
    -keyout "$tls/server-key.pem" -out "$tls/server.csr" 2>/dev/null
  # docker-py ignores tls_hostname: the certificate must name the host in docker_url.
  printf 'subjectAltName=%s\nextendedKeyUsage=serverAuth\n' \
    "DNS:server0.$STANDINS.svc,DNS:server1.$STANDINS.svc,DNS:server0.$STANDINS.svc.cluster.local,DNS:server1.$STANDINS.svc.cluster.local" \
    >"$tls/server.ext"
  openssl x509 -req -in "$tls/server.csr" -CA "$tls/ca.pem" -CAkey "$tls/ca-key.pem" -CAcreateserial \
    -days 30 -extfile "$tls/server.ext" -out "$tls/server-cert.pem" 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -subj "/CN=airflow" \
    -keyout "$tls/client-key.pem" -out "$tls/client.csr" 2>/dev/null
  printf 'extendedKeyUsage=clientAuth\n' >"$tls/client.ext"
  openssl x509 -req -in "$tls/client.csr" -CA "$tls/ca.pem" -CAkey "$tls/ca-key.pem" -CAcreateserial \
    -days 30 -extfile "$tls/client.ext" -out "$tls/client-cert.pem" 2>/dev/null
}

write_secrets_input() { # the input of `make secrets`, as secrets/kind.yaml.example describes it
  cat >"$STATE/secrets-kind.yaml" <<EOF
# Generated by scripts/kind-test.sh for the kind-test cluster only; never commit.
namespace: $NS
release: $RELEASE
connections:
  docker_server0: tcp://server0.$STANDINS.svc:2376
  docker_server1: tcp://server1.$STANDINS.svc:2376
  spark_cluster: spark://spark-master.$STANDINS.svc:7077
  # Replaced below by the in-cluster receiver (plain HTTP, which make_secrets.py accepts only on loopback).
  slack_webhook: https://hooks.slack.com/services/T000/B000/XXXX
docker_tls:
  ca: $STATE/tls/ca.pem
  cert: $STATE/tls/client-cert.pem
  key: $STATE/tls/client-key.pem
# Required by make_secrets.py; unused here because git-sync reads the git:// stand-in.
git_ssh_key: $STATE/git-ssh-key
metadata_db:
  bundled: true
admin:
  username: tripclick-admin
EOF
  chmod 600 "$STATE/secrets-kind.yaml"
}

dev_values() { # everything step 4 generates, under $STATE; reused by later runs, so keys do not rotate
  mkdir -p "$STATE"
  dev_certificates
  [ -s "$STATE/git-ssh-key" ] || ssh-keygen -q -t ed25519 -N '' -C kind-test -f "$STATE/git-ssh-key"
  [ -s "$STATE/gold-password" ] || (umask 077 && openssl rand -hex 16 >"$STATE/gold-password")
  write_secrets_input
}

main() {
  if [ "${1:-}" = --dev-values ]; then
    # Only the generated development values, into the given folder (tests/kind checks them offline).
    STATE=${2:?usage: $0 --dev-values <folder>}
    dev_values
    exit 0
  fi
  if [ "${1:-}" = --preflight ]; then
    say "step 1: preflight only"
    preflight only
    echo "preflight: all tools present"
    exit 0
  fi
  trap on_exit EXIT
  cd "$REPO"

  # step 1: Check every tool and its version (docker, kind, kubectl, helm, openssl, ssh-keygen, git, make, curl) and the Docker daemon
  say "step 1: tools"
  preflight

  # step 2: Create or reuse the kind cluster `tripclick` from scripts/kind/cluster.yaml (pinned node image)
  say "step 2: kind cluster $CLUSTER ($NODE_IMAGE)"
  mkdir -p "$STATE/servers" "$STATE/landing" "$STATE/lake"
  # The pods write here as uid 50000 and the producers as root; a throwaway development folder.
  chmod 0777 "$STATE/landing" "$STATE/lake"
  if kind get clusters 2>/dev/null | grep -qx "$CLUSTER"; then
    echo "reusing cluster $CLUSTER"
  else
    sed -e "s|@REPO@|$REPO|" -e "s|@STATE@|$STATE|" -e "s|^name: tripclick$|name: $CLUSTER|" \
      "$KIND_DIR/cluster.yaml" >"$STATE/cluster.yaml"
    kind create cluster --config "$STATE/cluster.yaml" --wait 5m
  fi
  kc cluster-info >/dev/null

  # step 3: Build the Airflow image with `make image` and the producer image, and load the Airflow image into the node
  say "step 3: images"
  local image tag commit
  image=$(make -s image-ref)
  tag=${image#*:}
  make image AIRFLOW_IMAGE="$image"
  kind load docker-image "$image" --name "$CLUSTER"
  docker build --build-arg "BASE_IMAGE=$PRODUCER_BASE_IMAGE" -t "$PRODUCER_IMAGE" workloads/producer
  docker save "$PRODUCER_IMAGE" -o "$STATE/producer-image.tar"

  # step 4: Generate development values (TLS certificates, passwords, the secrets input) and create the Secrets with scripts/make_secrets.py, the script behind `make secrets`
  say "step 4: development values and Secrets"
  dev_values
  kc create namespace "$NS" --dry-run=client -o yaml | kc apply -f -
  kc create namespace "$STANDINS" --dry-run=client -o yaml | kc apply -f -
  "$PY" scripts/make_secrets.py --file "$STATE/secrets-kind.yaml" --context "$CONTEXT"
  kc -n "$NS" patch secret tripclick-connections --type merge -p "{\"stringData\": {\"AIRFLOW_CONN_SLACK_WEBHOOK\": \"{\\\"conn_type\\\": \\\"slackwebhook\\\", \\\"password\\\": \\\"http://slack-receiver.$STANDINS.svc:8080/services/T000/B000/XXXX\\\"}\"}}"
  apply_secret "$NS" tripclick-gold-db --from-file=password="$STATE/gold-password"
  apply_secret "$STANDINS" gold-db --from-file=password="$STATE/gold-password"
  apply_secret "$STANDINS" docker-server-tls --from-file=ca.pem="$STATE/tls/ca.pem" \
    --from-file=cert.pem="$STATE/tls/server-cert.pem" --from-file=key.pem="$STATE/tls/server-key.pem"

  # step 5: Stand up the stand-ins from scripts/kind/standins.yaml: two TLS Docker daemons (producer image loaded), Spark master and worker, Slack receiver, gold PostgreSQL, git server
  say "step 5: stand-ins"
  sed "s|@AIRFLOW_IMAGE@|$image|" "$KIND_DIR/standins.yaml" | kc apply -f -
  wait_rollouts "$STANDINS"
  for server in server0 server1; do
    kc -n "$STANDINS" exec -i "deploy/$server" -- docker load <"$STATE/producer-image.tar"
  done

  # step 6: Generate one day of TripClick events for server0 and server1 (demo/datagen)
  say "step 6: day $DAY"
  "$PY" -m demo.datagen --date "$DAY" --out "$STATE/servers" >"$STATE/generated-$DAY.json"
  cat "$STATE/generated-$DAY.json"

  # step 7: Deploy with `helm dependency build chart` and `helm upgrade --install --wait` (values/base.yaml, values/kind.yaml, scripts/kind/values-kind-test.yaml)
  say "step 7: helm"
  commit=$(git rev-parse HEAD)
  if [ -n "$(git status --porcelain -- dags)" ]; then
    echo "NOTE: dags/ has uncommitted changes; git-sync serves commit $commit, without them"
  fi
  helm dependency build chart
  helm upgrade --install "$RELEASE" chart --kube-context "$CONTEXT" --namespace "$NS" \
    -f values/base.yaml -f values/kind.yaml -f "$KIND_DIR/values-kind-test.yaml" \
    --set "airflow.defaultAirflowTag=$tag" \
    --set "airflow.images.airflow.tag=$tag" \
    --set "airflow.images.pod_template.tag=$tag" \
    --set "airflow.dags.gitSync.ref=$commit" \
    --wait --timeout 15m

  # step 8: Wait for every Deployment and StatefulSet of the release to roll out
  say "step 8: rollout"
  wait_rollouts "$NS" "release=$RELEASE"

  # step 9: Port-forward the api-server and check that the DAG folder has no import errors
  say "step 9: api-server on 127.0.0.1:$PORT, import errors"
  kc -n "$NS" port-forward "svc/$RELEASE-api-server" "$PORT:8080" >"$STATE/port-forward.log" 2>&1 &
  PF_PID=$!
  local tries=0
  until curl -fsS -o /dev/null "http://127.0.0.1:$PORT/api/v2/monitor/health" 2>/dev/null; do
    tries=$((tries + 1))
    [ "$tries" -lt 60 ] || die "api-server not reachable through the port-forward (see $STATE/port-forward.log)"
    sleep 2
  done
  (umask 077 && kc -n "$NS" get secret tripclick-admin -o json | "$PY" -c 'import base64, json, sys
data = {k: base64.b64decode(v).decode() for k, v in json.load(sys.stdin)["data"].items()}
print(json.dumps({data["username"]: data["password"]}))' >"$STATE/admin-passwords.json")
  "$PY" "$KIND_DIR/pipeline.py" dag-ready --url "http://127.0.0.1:$PORT" --password-file "$STATE/admin-passwords.json" --timeout 300

  # step 10: Trigger tripclick_daily_pipeline for the past date over the REST API and poll until the run ends
  say "step 10: run $DAY"
  "$PY" "$KIND_DIR/pipeline.py" run --url "http://127.0.0.1:$PORT" --password-file "$STATE/admin-passwords.json" --date "$DAY" --timeout 2400

  # step 11: Assert the local end-to-end happy path's outcomes: silver deduplicated, bronze complete, gold marts consistent with silver, one Slack summary with every stage a success and no alert
  say "step 11: outcomes"
  kc -n "$STANDINS" port-forward svc/gold-db "$PG_PORT:5432" >"$STATE/port-forward-gold.log" 2>&1 &
  PF_GOLD_PID=$!
  sleep 3
  PGPASSWORD=$(cat "$STATE/gold-password") "$PY" "$KIND_DIR/pipeline.py" outcomes --date "$DAY" \
    --lake "$STATE/lake" --generated "$STATE/generated-$DAY.json" \
    --pg-dsn "host=127.0.0.1 port=$PG_PORT dbname=tripclick_gold user=etl"
  kc -n "$STANDINS" exec deploy/slack-receiver -- python -c \
    "import urllib.request; print(urllib.request.urlopen('http://127.0.0.1:8080/messages').read().decode())" |
    "$PY" "$KIND_DIR/pipeline.py" slack-check --date "$DAY"

  say "kind-test passed (cluster $CLUSTER kept; \`make kind-down\` removes it)"
}

main "$@"
