"""The gRPC gateway: thin servicers over the record store, object store and dispatcher.

Never imports torch (the gateway image has none). Entry point: ``genaudit.gateway.server.serve``.
"""
