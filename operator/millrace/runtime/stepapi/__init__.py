"""The step API: what step processes call over HTTP to report and to reach their data.

The server core (server.py) knows HTTP, tokens and limits; what the calls do
is a Backend's (backend.py): files in the local shell, Kubernetes objects in
the cluster shell.
"""
