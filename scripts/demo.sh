#!/usr/bin/env bash
# The Plinth demo: emulated GPU cluster, CRDs, the operator, every example applied and reconciled.
# Run through `make demo` (which sets up the virtualenv and the cached cluster binaries first).
set -euo pipefail
cd "$(dirname "$0")/.."

NAMESPACE=${PLINTH_DEMO_NAMESPACE:-plinth-demo}
STATE_DIR=${XDG_STATE_HOME:-$HOME/.local/state}/plinth
mkdir -p "$STATE_DIR"
OPERATOR_LOG="$STATE_DIR/demo-operator.log"
PODS_DIR="$STATE_DIR/demo-pods"

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "Starting the emulated cluster (4 kwok nodes x 8 nvidia.com/gpu)"
eval "$(plinth up)"
KUBECTL=$(plinth build --only kubectl)
kubectl() { "$KUBECTL" "$@"; }
kubectl get nodes -L nvidia.com/gpu.product

step "Installing the CRDs generated from the typed specs"
kubectl apply --server-side --force-conflicts -f crds/
kubectl wait --for=condition=Established --timeout=60s -f crds/

step "Starting the operator (log: $OPERATOR_LOG)"
plinth run --probe-port 0 >"$OPERATOR_LOG" 2>&1 &
OPERATOR_PID=$!
trap 'kill "$OPERATOR_PID" 2>/dev/null; wait "$OPERATOR_PID" 2>/dev/null || true' EXIT

step "Starting the local pod runner: pods annotated runner=local run for real (log: $PODS_DIR)"
kubectl create namespace "$NAMESPACE" --dry-run=client -o yaml | kubectl apply -f -
python -m plinth_devcluster.podrunner --namespace "$NAMESPACE" --log-dir "$PODS_DIR" \
  >"$STATE_DIR/demo-podrunner.log" 2>&1 &
RUNNER_PID=$!
trap 'kill "$RUNNER_PID" "$OPERATOR_PID" 2>/dev/null; wait "$RUNNER_PID" "$OPERATOR_PID" 2>/dev/null || true' EXIT

step "Applying examples/ in namespace $NAMESPACE"
kubectl -n "$NAMESPACE" apply -f examples/

step "Waiting for the operator to reconcile them"
kubectl -n "$NAMESPACE" wait --for=condition=Accepted --timeout=90s \
  trainingjobs,automlsweeps,modeldeployments --all
kubectl -n "$NAMESPACE" get plinth
kubectl -n "$NAMESPACE" get trainingjobs -o custom-columns='NAME:.metadata.name,ACCEPTED:.status.conditions[?(@.type=="Accepted")].reason,GENERATION:.status.observedGeneration'

step "What the operator made for the TrainingJobs (attempt Jobs, pods, rendezvous Services)"
kubectl -n "$NAMESPACE" wait --for=jsonpath='{.status.phase}'=Succeeded --timeout=60s \
  trainingjob/mlp-single || true
kubectl -n "$NAMESPACE" get trainingjobs
kubectl -n "$NAMESPACE" get jobs,pods,services -l plinth.dev/trainingjob -o wide
kubectl -n "$NAMESPACE" describe trainingjob mlp-single | sed -n '/^Status:/,$p'

step "A model served for real: Triton (python backend, CPU) in a local pod, autoscaled"
kubectl -n "$NAMESPACE" wait --for=condition=Ready --timeout=120s modeldeployment/scale || true
kubectl -n "$NAMESPACE" get modeldeployments
POD_IP=$(kubectl -n "$NAMESPACE" get pods -l plinth.dev/modeldeployment=scale \
  -o jsonpath='{.items[0].status.podIP}')
curl -s -X POST "http://$POD_IP:8000/v2/models/scale/infer" \
  -d '{"inputs":[{"name":"INPUT","shape":[1,4],"datatype":"FP32","data":[1,2,3,4]}]}' || true
echo
kubectl -n "$NAMESPACE" describe modeldeployment scale | sed -n '/^Status:/,$p' | head -n 40

step "The API explains itself"
kubectl explain trainingjob.spec | head -n 30

step "What Plinth would apply for the multi-node example (plinth render)"
plinth render -f examples/trainingjob-multi-node.yaml | head -n 60

step "Done"
echo "The cluster keeps running: export KUBECONFIG=$KUBECONFIG; stop it with: plinth down"
