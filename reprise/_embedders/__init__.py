"""Embedders: the local ONNX model, a remote embeddings endpoint, and the LRU in front."""
