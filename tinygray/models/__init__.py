"""The networks: the plain CNN, the ImageNet backbones and their weights, the teacher slice; model files."""
