#!/usr/bin/env bash
# Trains the demo model from scratch, writes it to training/demo/model-bf16 and its int8 copy, which
# the package ships, to models/vargpt-v1-demo (see README.md).
#   training/demo/train.sh [WORK_DIR]
# Step counts, not wall time, bound each stage, so a run is reproducible from the seeds; the
# minute caps only stop a much slower machine early (the script then says so).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
work="${1:-$here/work}"
python="${PYTHON:-python3}"
mkdir -p "$work"
cd "$here"
# 1. The VQ-VAE: its encoder, codebook and phi fix the codes everything else learns.
"$python" train_vqvae.py --out "$work/vqvae.pt" --steps 838 --minutes 120 --seed 0
# 2. The LLM, vision tower, projectors and VAR, on those codes: 2200 steps on a cosine schedule...
"$python" train_joint.py --vqvae "$work/vqvae.pt" --out "$work/joint-2200.pt" --steps 2200 --minutes 300 --seed 0
# 3. ...continued to step 2800 (the schedule stretched to 2800, so the rate rises from 1e-4 to
# 1.6e-4 and decays again) with shape questions three times as frequent, side by side with the
# VQ-VAE decoder's fine-tuning (the codes do not change), one thread each.
DEMO_THREADS=1 "$python" train_joint.py --vqvae "$work/vqvae.pt" --resume "$work/joint-2200.pt" --out "$work/joint.pt" \
  --steps 2800 --minutes 300 --question-weights shape=3 &
joint=$!
DEMO_THREADS=1 "$python" train_vqvae.py --resume "$work/vqvae.pt" --decoder-only --out "$work/vqvae-decoder.pt" \
  --steps 500 --minutes 300 --lr 5e-4 --seed 1
wait "$joint"
# 4. A vision tower trained from scratch on the scenes' attributes (training pairs and unnamed
# colours), then put into the model for 800 more joint steps with its attribute losses kept on.
"$python" train_vision.py --out "$work/vision.pt" --steps 1000 --minutes 60 --seed 0
"$python" train_joint.py --vqvae "$work/vqvae.pt" --resume "$work/joint.pt" --vision "$work/vision.pt" \
  --out "$work/joint-vision.pt" --steps 3600 --minutes 300 --question-weights shape=3 --unnamed 6 --vision-batch 32
# 5. The drawing path alone, longer, from the model so far written in bfloat16 (its reading half is
# final): 2800 steps of 24 drawings that train only image_gen_projector, image_gen_projector_out
# and the VAR (the vision tower, the LLM and the VQ-VAE stay frozen); then 700 more steps of the
# VQ-VAE's decoder alone (the codes do not change).
"$python" export.py --checkpoint "$work/joint-vision.pt" --vqvae "$work/vqvae-decoder.pt" --out "$work/reader" --dtype bfloat16 --cfg 3
"$python" train_joint.py --init-from "$work/reader" --generator-only --out "$work/generator.pt" \
  --steps 2800 --minutes 300 --draw-batch 24 --lr 6e-4 --seed 5
"$python" train_vqvae.py --resume "$work/reader" --decoder-only --out "$work/vqvae-decoder-2.pt" \
  --steps 700 --minutes 300 --lr 3e-4 --seed 2
"$python" export.py --checkpoint "$work/generator.pt" --vqvae "$work/vqvae-decoder-2.pt" --out "$work/stage5" --dtype bfloat16 --cfg 3
# 6. The whole VQ-VAE again, from stage 5's, for colour: 2000 steps on a cosine schedule from 1e-3
# with each picture's mean shape colour in the loss. Its codes change, so the drawing path is then
# trained on them from the stage 5 model exactly as in stage 5 (the reading half stays frozen).
"$python" train_vqvae.py --resume "$work/stage5" --out "$work/vqvae-colour.pt" --steps 2000 --minutes 120 \
  --lr 1e-3 --schedule cosine --colour-loss 2 --restart-until 1400 --seed 3
"$python" train_joint.py --init-from "$work/stage5" --vqvae "$work/vqvae-colour.pt" --generator-only --out "$work/generator-2.pt" \
  --steps 2800 --minutes 300 --draw-batch 24 --lr 6e-4 --seed 6
# (generator-2.pt holds the VQ-VAE it was trained on, as the export needs it.)
"$python" export.py --checkpoint "$work/generator-2.pt" --out "$work/stage6" --dtype bfloat16 --cfg 3
# 7. The reading half alone, from the stage 6 model: 2500 steps that train only the vision tower and
# the LLaVA projector (the LLM, the drawing path and the VQ-VAE stay frozen, so every drawing stays
# exactly as it is), on 12 questions about training pairs (shape questions three times as frequent,
# colour questions twice) and 12 about shapes in unnamed colours per step, with fresh attribute heads
# on the tower.
"$python" train_joint.py --init-from "$work/stage6" --reader-only --out "$work/reader.pt" --steps 2500 --minutes 60 \
  --ask-batch 12 --unnamed 12 --question-weights shape=3,colour=2 --lr 3e-4 --seed 7
"$python" check_runtime.py --checkpoint "$work/reader.pt" --work "$work/check"
"$python" export.py --checkpoint "$work/reader.pt" --out "$here/model-bf16" --dtype bfloat16 --cfg 3
# Then the copy the package ships, int8 (LLM and VAR linear layers, one scale per output channel):
# 18.7 MB against 26.8 MB, as right as the bf16 master (the package README, "The built-in demo model").
rm -rf "$root/models/vargpt-v1-demo"
node "$root/dist/cli/main.js" quantize --model "$here/model-bf16" --out "$root/models/vargpt-v1-demo" --weights int8
node "$here/eval.mjs" --model "$root/models/vargpt-v1-demo"
# As `vargpt generate` draws by default: up to 4 drawings, the first the model reads back as asked.
node "$here/eval.mjs" --model "$root/models/vargpt-v1-demo" --candidates 4
