"""The local test world: cluster, stand-in servers (judge, NIM, S3) and a kubelet harness. Not product code."""
