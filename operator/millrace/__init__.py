"""millrace: Windmill OpenFlow flows on Kubernetes, and locally with no cluster."""

__version__ = "0.1.0"
