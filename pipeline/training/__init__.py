"""Training: the loop (with distillation), the thread tuner, and multi-process (torchrun) training."""
