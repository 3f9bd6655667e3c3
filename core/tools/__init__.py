"""Tools over models and runs: FLOPs report, mask picture, training curves."""
