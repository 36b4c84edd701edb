"""Distillation: the losses and the teacher's stored soft targets."""
