"""The library API: one module per command family, each function taking the config first.

The CLI is a thin click layer over these; nothing here prints or exits. Results come back as
data, failures as ``KeyservicesError`` subclasses carrying their exit code.
"""
