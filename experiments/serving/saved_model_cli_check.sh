#!/usr/bin/env bash
# Runs both signatures of every exported generator under `saved_model_cli run` (TensorFlow's C++
# SavedModel loader, the one TF Serving uses) and prints a summary line per call.
#   bash experiments/serving/saved_model_cli_check.sh [MODELS_DIR] > experiments/serving/results/saved_model_cli.txt
set -euo pipefail
cd "$(dirname "$0")/../.."
MODELS=${1:-experiments/results/quick/models}
CLI=${SAVED_MODEL_CLI:-.venv/bin/saved_model_cli}
PY=${PYTHON:-.venv/bin/python}
export TF_CPP_MIN_LOG_LEVEL=3
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
echo "# saved_model_cli run over $MODELS ($(date -u +%Y-%m-%dT%H:%M:%SZ), $($CLI --version 2>/dev/null || echo tensorflow $($PY -c 'import tensorflow as tf; print(tf.__version__)' 2>/dev/null)))"
for dir in "$MODELS"/*/1; do
    name=$(basename "$(dirname "$dir")")
    kind=$($PY -c "import json,sys; m=json.load(open(sys.argv[1])); print(m['kind'], m['latent_dim'], m['generated_label'] if m['generated_label'] is not None else 1)" "$dir/assets.extra/keras_cxr.json")
    read -r k latent_dim label <<<"$kind"
    $PY -c "import numpy as np,sys; np.save(sys.argv[1], np.random.default_rng(7).standard_normal((3, int(sys.argv[2]))).astype('float32')); np.save(sys.argv[3], np.array([0, 1, 1], np.int32))" \
        "$work/latent.npy" "$latent_dim" "$work/label.npy"
    serve_inputs="latent=$work/latent.npy"
    [ "$k" = cdcgan ] && serve_inputs="$serve_inputs;label=$work/label.npy"
    for sig in generate serving_default; do
        rm -rf "$work/out"
        if [ $sig = generate ]; then
            args=(--input_exprs "num_images=4;label=$label;seed=7")
            shown="--input_exprs 'num_images=4;label=$label;seed=7'"
        else
            args=(--inputs "$serve_inputs")
            shown="--inputs '${serve_inputs//$work\//}'"
        fi
        "$CLI" run --dir "$dir" --tag_set serve --signature_def $sig "${args[@]}" --outdir "$work/out" >"$work/log" 2>&1 \
            || { echo "FAIL $name $sig"; tail -3 "$work/log"; exit 1; }
        stats=$($PY -c "import numpy as np,sys; a=np.load(sys.argv[1]); print(f'images {a.dtype} {list(a.shape)} min {a.min():.3f} max {a.max():.3f} mean {a.mean():.3f}')" "$work/out/images.npy")
        echo "$name $sig $shown -> $(grep -o 'Output images is saved.*' "$work/log" | sed "s|$work/||") | $stats"
    done
done
