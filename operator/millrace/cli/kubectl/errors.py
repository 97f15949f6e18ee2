"""What a `kubectl millrace` command refuses, said in one line (a flow's own problems are FlowErrors)."""


class PluginError(Exception):
    pass
