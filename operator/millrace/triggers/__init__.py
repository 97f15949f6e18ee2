"""Starting flows from outside: webhooks (and, with a preprocessor, their raw events)."""
