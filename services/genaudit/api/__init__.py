"""Generated gRPC stubs of the genaudit API (``make protos``; never edit by hand).

Sources: ``protos/genaudit/v1/*.proto`` (package ``genaudit.v1``), compiled by ``protos/generate.py``.
"""
