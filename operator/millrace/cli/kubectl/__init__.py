"""`kubectl millrace`: runs in the cluster of the current kubeconfig context (main.py)."""
