"""ScreeningService: one image in, the detector's verdict out (batched with concurrent calls)."""

from __future__ import annotations

import grpc

from genaudit.api.v1 import screening_pb2 as pb
from genaudit.api.v1 import screening_pb2_grpc
from genaudit.errors import FailedPrecondition, InvalidArgument
from genaudit.gateway.context import GatewayContext
from genaudit.gateway.screening import ModelInfo, ScreenImage
from genaudit.images import decode_image, probe_image
from genaudit.telemetry.metrics import SCREEN_LATENCY, SCREEN_VERDICTS


class ScreeningServicer(screening_pb2_grpc.ScreeningServiceServicer):
    def __init__(self, ctx: GatewayContext) -> None:
        self._ctx = ctx

    def Screen(self, request: pb.ScreenRequest, context: grpc.ServicerContext):
        batcher = self._ctx.batcher
        if batcher is None:
            raise FailedPrecondition(
                "no detector model is configured on this gateway: screening is unavailable until one is deployed"
            )
        with SCREEN_LATENCY.time():
            name = request.filename[:200] or "image"
            if not request.image:
                raise InvalidArgument("image is empty")
            try:
                probe_image(request.image, self._ctx.limits)  # header only: size, format, pixel count
                image = decode_image(request.image, self._ctx.limits)
            except InvalidArgument as exc:
                raise InvalidArgument(f"{name}: {exc.message}") from exc
            verdict = batcher.screen(ScreenImage(request.image, image), timeout_s=context.time_remaining())
            model = verdict.model or ModelInfo(batcher.screener.version, batcher.screener.threshold)
            generated = verdict.probability_generated >= model.threshold
            SCREEN_VERDICTS.labels(label="generated" if generated else "real").inc()
            return pb.ScreenResponse(
                probability_generated=verdict.probability_generated,
                label=pb.SCREEN_LABEL_GENERATED if generated else pb.SCREEN_LABEL_REAL,
                threshold=model.threshold, model_version=model.version, evidence=verdict.evidence,
            )
