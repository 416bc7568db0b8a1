#!/usr/bin/env bash
# Everything Tubelet checks on a GPU, in one command for a bare GPU machine (CUDA torch, Lightning,
# transformers and OpenCV present; deepspeed, webdataset, omegaconf, av and wandb carried as wheels
# in .gpu-wheels/ by tests/gpu/fetch_wheels.sh; no network, no Ray). Within 8 minutes:
#
#   1. install the carried wheels into /tmp/site (no index, no deps)
#   2. tubelet smoke --device cuda                               -> smoke.json, wandb-runs.tar.gz
#   3. pytest -m gpu (tests/unit/test_bench_model.py, tests/gpu) -> gpu_figures.json, gpu_tests.xml
#   4. tubelet bench model --size b --device cuda --dtype bf16   -> bench_model_b.json
#   5. tubelet bench cores (cores per GPU from step 4's step time) -> bench_cores.txt
#   6. tubelet bench model ... --compile                          -> bench_model_b_compile.json
#
# Each step has its own time limit and every step runs even if one before failed; each step's
# output goes to steps.log, a table of outcomes is printed last, and the exit status is 1 if any
# failed. The 8 result files land in $OUT (default ./gpu-out; the device tool brings back at most
# 8); runs and corpora stay in $WORK (default /tmp/tubelet-gpu).
#
#   bash tests/gpu/run_on_gpu.sh          on the GPU machine (see tests/gpu/README.md for the call)
#   bash tests/gpu/run_on_gpu.sh --cpu    dry run here: CPU, small sizes, Ray made unimportable,
#                                         wheels not installed (this venv has the packages)
set -uo pipefail
cd "$(dirname "$0")/../.."
repo=$PWD
mode=gpu
[[ "${1:-}" == "--cpu" ]] && mode=cpu
out=${OUT:-$repo/gpu-out}
work=${WORK:-/tmp/tubelet-gpu}
mkdir -p "$out" "$work"
log=$out/steps.log
: > "$log"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false WANDB_SILENT=true
[[ -n "${WANDB_API_KEY:-}" ]] || export WANDB_MODE=offline
python=${PYTHON:-python3}
site=/tmp/site
guard=$work/no-ray  # a sitecustomize that makes `import ray` fail: proves nothing here needs it
mkdir -p "$guard"
cat > "$guard/sitecustomize.py" <<'PY'
import sys
class _NoRay:
    def find_spec(self, name, path=None, target=None):
        if name == "ray" or name.startswith("ray."):
            raise ImportError("ray is not installed on this machine (run_on_gpu.sh)")
sys.meta_path.insert(0, _NoRay())
PY
export PYTHONPATH="$guard:$repo:$site${PYTHONPATH:+:$PYTHONPATH}"

mkdir -p "$work/bin"  # the checkout is not pip-installed there: a `tubelet` on PATH that runs it
printf '#!/usr/bin/env bash\nexec %q -c "import sys; from pretrain.cli import main; sys.exit(main(sys.argv[1:]))" "$@"\n' \
  "$python" > "$work/bin/tubelet"
chmod +x "$work/bin/tubelet"
export PATH="$work/bin:$PATH"
declare -a names=() results=() seconds=()
step() {  # step NAME LIMIT_S COMMAND...
  local name=$1 limit=$2 start=$SECONDS status
  shift 2
  echo "==> $name (limit ${limit}s)" | tee -a "$log"
  timeout --kill-after=10 "$limit" "$@" >> "$log" 2>&1
  status=$?
  (( status == 0 )) || tail -n 15 "$log"
  names+=("$name"); results+=("$status"); seconds+=($((SECONDS - start)))
}

if [[ $mode == gpu ]]; then
  step install 40 "$python" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target "$site" "$repo"/.gpu-wheels/*.whl
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv || true
  smoke=(--device cuda) bench=(--size b --batch 8 --device cuda --dtype bf16 --reps 5 --warmup 2)
  limits=(100 170 55 45 70)
else
  export DS_ACCELERATOR=cpu
  smoke=(--device cpu --small) bench=(--size tiny --img-size 64 --num-frames 8 --batch 2 --device cpu --reps 2)
  limits=(300 300 300 180 300)
fi
"$python" -c 'import torch, pytorch_lightning, deepspeed, webdataset, omegaconf, av, transformers, cv2
print("torch", torch.__version__, "cuda", torch.version.cuda, torch.cuda.is_available() and torch.cuda.get_device_name())
print("lightning", pytorch_lightning.__version__, "deepspeed", deepspeed.__version__, "av", av.__version__)' \
  2>&1 | grep -v "real_accelerator"

step smoke "${limits[0]}" tubelet smoke "${smoke[@]}" --out "$work/smoke"
cp "$work/smoke/smoke.json" "$out/" 2>/dev/null
(cd "$work/smoke/runs" 2>/dev/null && tar czf "$out/wandb-runs.tar.gz" */wandb) 2>/dev/null
# Only the modules holding gpu tests: the others import Ray (absent there) at collection.
step gpu-tests "${limits[1]}" env TUBELET_GPU_FIGURES="$out/gpu_figures.json" "$python" -m pytest -m gpu -q \
  -p no:cacheprovider --timeout=150 --junitxml="$out/gpu_tests.xml" --basetemp="$work/pytest" \
  tests/unit/test_bench_model.py tests/gpu
step bench-model "${limits[2]}" bash -c 'tubelet bench model "$@" --json > "$0"' "$out/bench_model_b.json" "${bench[@]}"
step bench-cores "${limits[3]}" bash -c 'tubelet bench cores --from-bench "$0" | tee "$1"' \
  "$out/bench_model_b.json" "$out/bench_cores.txt"
# The training encoding (shards build --train-encoding) on the same GPU rate; NVDEC's clips/s beside
# the CPU's when PyNvVideoCodec is carried (fetch_wheels.sh --gpu-decode).
decode_flag=()
"$python" -c "import PyNvVideoCodec" 2>/dev/null && [[ $mode == gpu ]] && decode_flag=(--gpu-decode)
step bench-cores-train "${limits[3]}" bash -c 'tubelet bench cores --from-bench "$0" --encoding train "${@:2}" | tee -a "$1"' \
  "$out/bench_model_b.json" "$out/bench_cores.txt" "${decode_flag[@]}"
# Compiling two ViT-Bs takes the longest and matters least: it gets what is left of the 480 s.
compile_limit=$(( limits[4] > 480 - SECONDS ? limits[4] : 480 - SECONDS ))
[[ $mode == cpu ]] && compile_limit=${limits[4]}
step bench-compile "$compile_limit" bash -c 'tubelet bench model "$@" --compile --json > "$0"' \
  "$out/bench_model_b_compile.json" "${bench[@]}"

failed=0
echo
printf '%-14s %-8s %s\n' step status seconds
for i in "${!names[@]}"; do
  status=${results[$i]}
  [[ $status == 0 ]] && word=ok || { word="FAILED($status)"; failed=1; }
  printf '%-14s %-8s %s\n' "${names[$i]}" "$word" "${seconds[$i]}"
done
[[ -f "$out/smoke.json" ]] && "$python" -c "import json,sys; d=json.load(open(sys.argv[1])); \
print('smoke checks:', sum(d['checks'].values()), 'of', len(d['checks']), 'passed;', \
{k: v for k, v in d['figures'].items() if k.startswith('pretrain_') or k == 'wall_seconds'})" "$out/smoke.json"
for f in bench_model_b.json bench_model_b_compile.json; do
  [[ -s "$out/$f" ]] && "$python" -c "import json,sys; r=json.load(open(sys.argv[1])); \
print(sys.argv[2], {k: (round(v, 4) if isinstance(v, float) else v) for k, v in r.items() if k.endswith(('_step_s', '_mfu', '_tflops', 'speedup', '_memory_bytes')) or k.startswith(('speedup', 'compile_gain'))})" \
    "$out/$f" "$f"
done
[[ -f "$out/bench_cores.txt" ]] && cat "$out/bench_cores.txt"
exit "$failed"
