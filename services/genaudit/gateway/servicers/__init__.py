"""Thin gRPC servicers: check the request, call the domain code, convert the answer.

They raise genaudit's domain errors; the error interceptor turns those into statuses. The caller's
tenant comes from ``genaudit.gateway.auth.current_tenant``.
"""
