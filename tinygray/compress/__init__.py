"""Compression: magnitude and filter pruning, quantization-aware training, TFLite conversion."""
