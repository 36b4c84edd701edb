#!/usr/bin/env bash
# Two queued sweep points one at a time (`dvc queue start -j 1`) against two at once (`-j 2`), on the tiny
# parameters of the tests, in a throw-away git + DVC copy of this repository; then checks that every stage
# run of the four experiments reached the shared mlflow.db. Not a test: it times things.
#   bash benchmarks/queue_parallel.sh /tmp/queue-bench
# The two pairs differ from the baseline and from each other only in train_student.learning_rate, so they
# do the same work (fixed epoch budgets) and DVC's run cache cannot restore any of them.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
work=${1:?usage: queue_parallel.sh WORKDIR}
export PATH="$repo/.venv/bin:$PATH" MLFLOW_DISABLE_TELEMETRY=true
unset MLFLOW_TRACKING_URI PIPELINE_RUN_ID
rm -rf "$work" && mkdir -p "$work/.dvc" && cd "$work"
cp -r "$repo/dvc.yaml" "$repo/.gitignore" "$repo/stages" "$repo/tinygray" .
cp "$repo/.dvc/config" "$repo/.dvc/.gitignore" .dvc/
cp "$repo/tests/tiny_params.yaml" params.yaml
export PYTHONPATH="$work"
git init -q && git config user.name bench && git config user.email bench@example.com
git add -A && git commit -qm "tiny pipeline"
dvc repro > repro.log 2>&1
git add -A && git commit -qm "baseline" > /dev/null

run_pair() {  # jobs lr1 lr2: queue two points, run them with -j jobs, print the wall time
  local jobs=$1
  dvc exp run --queue -q -n "lr-$2" -S "train_student.learning_rate=$2"
  dvc exp run --queue -q -n "lr-$3" -S "train_student.learning_rate=$3"
  local start=$SECONDS
  dvc queue start -j "$jobs" > /dev/null
  while [[ $(dvc queue status) =~ Queued|Running ]]; do sleep 2; done
  echo "-j $jobs: two points in $((SECONDS - start)) s"
  dvc queue status | grep -E "lr-$2|lr-$3"
}
run_pair 1 0.011 0.012
run_pair 2 0.013 0.014
python - <<'EOF'
from mlflow import MlflowClient
client = MlflowClient(tracking_uri="sqlite:///mlflow.db")
experiment = client.get_experiment_by_name("tinygray")
for name in ["lr-0.011", "lr-0.012", "lr-0.013", "lr-0.014"]:
    runs = client.search_runs([experiment.experiment_id], f"tags.dvc_exp_name = '{name}' and tags.stage != ''")
    print(name, len(runs), "stage runs:", sorted({r.info.status for r in runs}))
EOF
