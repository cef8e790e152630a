#!/usr/bin/env bash
# The Plinth demo: train -> tune -> serve, for real, on the handwritten digits that ship with
# scikit-learn, on the emulated GPU cluster. Run through `make demo` (which sets up the
# virtualenv and the cached cluster binaries first; about 3 minutes after that).
#
#  1. a single-node TrainingJob trains (real processes, through the local pod runner);
#  2. the multi-node example runs as a 2-node gang (torchrun, gloo on the CPU);
#  3. an AutoMLSweep tries 6 trials, ASHA stops the weak ones, the best is recorded;
#  4. a ModelDeployment serves the best trial's model on a real tritonserver, and held-out
#     digits are sent to it (tritonclient).
#
# The cluster, the operator and the pod runner keep running afterwards; `plinth down`
# stops them all. Settings (environment): PLINTH_DEMO_CLUSTER (cluster name, default
# plinth), PLINTH_DEMO_STATE_DIR (its state folder), PLINTH_DEMO_NAMESPACE.
set -euo pipefail
cd "$(dirname "$0")/.."

CLUSTER=${PLINTH_DEMO_CLUSTER:-plinth}
STATE_DIR=${PLINTH_DEMO_STATE_DIR:-${XDG_STATE_HOME:-$HOME/.local/state}/plinth/clusters/$CLUSTER}
NAMESPACE=${PLINTH_DEMO_NAMESPACE:-plinth-demo}
WHERE=(--name "$CLUSTER" --state-dir "$STATE_DIR")
DEMO_DIR="$STATE_DIR/demo"          # checkpoints, pods' output, the sweep's plot
PODS_DIR="$DEMO_DIR/pods"
STARTED=$SECONDS

step() {
  STEP_STARTED=$SECONDS
  printf '\n\033[1m== %s\033[0m\n' "$*"
}
took() { printf '   (%ss)\n' $((SECONDS - STEP_STARTED)); }

# await KIND/NAME "SUCCESS OTHER-END-PHASES" TIMEOUT TEMPLATE: print a progress line (the
# go-template TEMPLATE) whenever it changes, until the phase is one of the end phases.
await() {
  local target=$1 ends=" $2 " timeout=$3 template=$4 began=$SECONDS last="" line phase
  while :; do
    line=$(kubectl -n "$NAMESPACE" get "$target" \
      -o go-template="{{with .status}}{{.phase}}{{end}}|$template" 2>/dev/null || true)
    phase=${line%%|*}
    if [[ $line != "$last" ]]; then
      printf '   %4ss  %-10s %s\n' $((SECONDS - began)) "${phase:-Pending}" "${line#*|}"
      last=$line
    fi
    [[ -n $phase && $ends == *" $phase "* ]] && break
    if ((SECONDS - began > timeout)); then
      echo "   gave up after ${timeout}s; see: kubectl -n $NAMESPACE describe $target" >&2
      return 1
    fi
    sleep 2
  done
  [[ $phase == "${2%% *}" ]] || { kubectl -n "$NAMESPACE" describe "$target" >&2; return 1; }
}

# apply FILE: an example as written, its local checkpoint folder moved into this demo's.
apply() { sed "s|/tmp/plinth-demo|$DEMO_DIR|g" "$1" | kubectl -n "$NAMESPACE" apply -f -; }

pod_log() { # the output of the first pod whose name starts with $1 (the pod runner's file)
  local pod
  pod=$(kubectl -n "$NAMESPACE" get pods -o name | sed 's|^pod/||' | grep -m1 "^$1" || true)
  if [[ -n $pod ]]; then sed 's/^/   | /' "$PODS_DIR/$NAMESPACE/$pod.log"; fi
}

free_port() { python -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

step "Starting the emulated cluster (4 kwok nodes x 8 nvidia.com/gpu)"
EXPORT=$(plinth up "${WHERE[@]}")   # fails the demo if the cluster cannot start
eval "$EXPORT"
KUBECTL=$(plinth build --only kubectl 2>/dev/null)
kubectl() { "$KUBECTL" "$@"; }
kubectl get nodes -L nvidia.com/gpu.product
took

step "Installing the CRDs and starting the operator and the local pod runner"
kubectl apply --server-side --force-conflicts -f crds/ >/dev/null
kubectl wait --for=condition=Established --timeout=60s -f crds/ >/dev/null
mkdir -p "$DEMO_DIR"
PORT=$(free_port)
plinth spawn "${WHERE[@]}" operator -- plinth run --probe-port "$PORT" \
  --metrics-base-url "http://127.0.0.1:$PORT" --intake-key-file "$DEMO_DIR/intake.key"
for _ in $(seq 120); do curl -fs "http://127.0.0.1:$PORT/readyz" >/dev/null && break; sleep 0.5; done
curl -fs "http://127.0.0.1:$PORT/readyz" >/dev/null ||
  { echo "the operator is not ready; see $STATE_DIR/logs/operator.log" >&2; exit 1; }
if kubectl get namespace "$NAMESPACE" >/dev/null 2>&1; then
  echo "   removing what an earlier demo left in namespace $NAMESPACE"
  kubectl delete namespace "$NAMESPACE" --wait=true --timeout=120s >/dev/null
fi
rm -rf "$DEMO_DIR/checkpoints" "$PODS_DIR"
# Pods annotated devcluster.plinth.dev/runner=local run for real, as local processes.
plinth spawn "${WHERE[@]}" pod-runner -- python -m plinth_devcluster.podrunner \
  --namespace "$NAMESPACE" --log-dir "$PODS_DIR"
kubectl create namespace "$NAMESPACE" >/dev/null
echo "   operator ready on 127.0.0.1:$PORT; pods' output in $PODS_DIR/$NAMESPACE"
took

F='printf "%.4f"'
TJ_PROGRESS="{{with .status.metrics}}step {{.step}}  loss {{$F .latest.loss}}  accuracy {{$F .latest.accuracy}}{{end}}"
step "Training on real data: examples/trainingjob-single-node.yaml (1,797 handwritten digits)"
apply examples/trainingjob-single-node.yaml
await trainingjob/mlp-single "Succeeded Failed" 240 "$TJ_PROGRESS"
kubectl -n "$NAMESPACE" get trainingjob mlp-single
echo "   the worker's output:"
pod_log mlp-single
took

step "A 2-node gang: examples/trainingjob-multi-node.yaml (torchrun, gloo on the CPU)"
apply examples/trainingjob-multi-node.yaml
await trainingjob/mlp-multi "Succeeded Failed" 240 "$TJ_PROGRESS"
kubectl -n "$NAMESPACE" get pods -l plinth.dev/trainingjob=mlp-multi -o wide
pod_log mlp-multi | grep -E 'ranks|final|exported' || true
took

step "Tuning: examples/automlsweep-tpe.yaml (6 trials, 2 at a time, TPE + ASHA)"
apply examples/automlsweep-tpe.yaml
await automlsweep/mlp-sweep "Succeeded Failed" 420 \
  "{{with .status.trialCounts}}{{.succeeded}} succeeded, {{.pruned}} pruned, {{.running}} running{{end}}{{with .status.bestTrial}}; best {{.name}} (accuracy {{$F .value}}){{end}}"
kubectl -n "$NAMESPACE" get automlsweep mlp-sweep -o go-template="{{range .status.trials}}{{.name}}	{{.state}}	lr {{printf \"%.5f\" .parameters.lr}}	hidden {{.parameters.hidden}}	accuracy {{$F .values.accuracy}}	{{with .reason}}{{.}}{{end}}
{{end}}" | column -t -s $'\t' | sed 's/^/   /'
kubectl -n "$NAMESPACE" get automlsweep mlp-sweep \
  -o go-template="   best trial: {{.status.bestTrial.name}}, accuracy {{$F .status.bestTrial.value}}
"
PLOT="$DEMO_DIR/mlp-sweep.png"
echo "   plot: $(plinth sweep plot mlp-sweep -n "$NAMESPACE" -o "$PLOT")"
took

step "Serving the winner: examples/modeldeployment-digits.yaml (fromSweep, real tritonserver)"
apply examples/modeldeployment-digits.yaml
await modeldeployment/digits "Ready Degraded Failed" 240 \
  '{{with .status}}ready {{.readyReplicas}}/{{.desiredReplicas}}{{range .conditions}}{{if eq .type "ModelReady"}}  {{.message}}{{end}}{{end}}{{end}}'
kubectl -n "$NAMESPACE" get modeldeployment digits
POD_IP=$(kubectl -n "$NAMESPACE" get pods -l plinth.dev/modeldeployment=digits \
  --field-selector=status.phase=Running -o jsonpath='{.items[0].status.podIP}')
echo "   asking http://$POD_IP:8000 about the 360 held-out digits no trial trained on:"
python images/trainer/digits_client.py "http://$POD_IP:8000" --model digits | sed 's/^/   /'
took

step "Done in $((SECONDS - STARTED))s. The cluster, the operator and the pod runner keep running:"
DOWN="plinth down"
[[ $CLUSTER == plinth && -z ${PLINTH_DEMO_STATE_DIR:-} ]] || DOWN="plinth down ${WHERE[*]}"
cat <<EOF
   export KUBECONFIG=$KUBECONFIG
   export PATH=$(dirname "$KUBECTL"):\$PATH   # the kubectl built with the cluster
   kubectl -n $NAMESPACE get plinth                   # every TrainingJob, sweep, deployment
   kubectl -n $NAMESPACE describe automlsweep mlp-sweep   # trials, best trial, events
   ls $PODS_DIR/$NAMESPACE               # each pod's output
   open $PLOT              # the sweep, pictured
   curl http://$POD_IP:8000/v2/models/digits     # the served model (Triton's HTTP API)
   $DOWN          # stops it all: cluster, operator, pod runner, Triton
EOF
