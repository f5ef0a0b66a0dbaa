"""Container health probe for the gateway: asks grpc.health.v1 whether the server is SERVING.

Used by the gateway image's HEALTHCHECK and the compose healthcheck (Kubernetes uses its native gRPC
probe instead). Exit status 0 = SERVING, 1 = anything else or no answer. Only grpcio and
grpcio-health-checking are needed, both in the base install. Port: GENAUDIT_GRPC_PORT (default 50051).
"""

import os
import sys

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc


def main() -> int:
    target = f"127.0.0.1:{os.environ.get('GENAUDIT_GRPC_PORT', '50051')}"
    service = sys.argv[1] if len(sys.argv) > 1 else ""  # "" = the server as a whole
    with grpc.insecure_channel(target) as channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=service), timeout=3.0,
            )
        except grpc.RpcError as err:
            print(f"health check of {target} failed: {err.code().name}", file=sys.stderr)
            return 1
    if reply.status != health_pb2.HealthCheckResponse.SERVING:
        print(f"{target} is {health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
