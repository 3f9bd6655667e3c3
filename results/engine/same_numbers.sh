#!/usr/bin/env bash
# usage: results/engine/same_numbers.sh TREE OUT  -- the embedded recipes, 2 epochs each, into OUT/<name>
tree=$1; out=$2; py=/work/main/.venv/bin/python
cd "$tree"
export SWIN_SUITE_CURVES=0
common="train.epochs=2 train.progress=false train.tensorboard=false"
$py -m core.train --config configs/swin/tiny_digits.yaml --output-dir $out/digits --opt $common > $out/digits.log 2>&1; echo "digits $?"
$py -m video_swin.train --output-dir $out/video --opt $common > $out/video.log 2>&1; echo "video $?"
$py -m swin_mlp.train --config configs/swin_mlp/tiny_digits.yaml --output-dir $out/mlp --opt $common > $out/mlp.log 2>&1; echo "mlp $?"
$py -m simmim.pretrain --config configs/simmim/tiny_digits.yaml --output-dir $out/simmim --opt $common > $out/simmim.log 2>&1; echo "simmim $?"
$py -m moby.pretrain --config configs/moby/tiny_shapes.yaml --output-dir $out/moby --opt $common > $out/moby.log 2>&1; echo "moby $?"
