"""DatasetService: create datasets, hand out upload URLs, receive streamed images, count uploads."""

from __future__ import annotations

from collections.abc import Iterator

import grpc

from genaudit.api.v1 import datasets_pb2 as pb
from genaudit.api.v1 import datasets_pb2_grpc
from genaudit.errors import InvalidArgument
from genaudit.gateway.auth import current_tenant
from genaudit.gateway.context import GatewayContext
from genaudit.gateway.convert import dataset_to_proto
from genaudit.gateway.uploads import ImageUpload
from genaudit.gateway.validation import require_filenames, require_id, require_page_size
from genaudit.jobs.datasets import commit_dataset
from genaudit.jobs.keys import dataset_image_key


class DatasetServicer(datasets_pb2_grpc.DatasetServiceServicer):
    def __init__(self, ctx: GatewayContext) -> None:
        self._ctx = ctx

    def CreateDataset(self, request: pb.CreateDatasetRequest, context: grpc.ServicerContext):
        dataset = self._ctx.records.create_dataset(current_tenant(), request.name)
        return pb.CreateDatasetResponse(dataset=dataset_to_proto(dataset))

    def GetUploadUrls(self, request: pb.GetUploadUrlsRequest, context: grpc.ServicerContext):
        tenant = current_tenant()
        dataset_id = require_id(request.dataset_id, "dataset_id")
        names = require_filenames(request.filenames)
        self._ctx.records.get_dataset(tenant, dataset_id)
        expiry = self._ctx.settings.presign_expiry_s
        urls = [
            pb.UploadUrl(filename=name, url=self._ctx.store.presigned_put_url(
                dataset_image_key(tenant, dataset_id, name), expiry))
            for name in names
        ]
        return pb.GetUploadUrlsResponse(urls=urls, expires_in_seconds=expiry)

    def UploadImages(self, request_iterator: Iterator[pb.UploadImagesRequest], context: grpc.ServicerContext):
        tenant = current_tenant()
        first = next(request_iterator, None)
        if first is None or first.WhichOneof("message") != "header":
            raise InvalidArgument("the first message of an upload must be the header with the dataset_id")
        dataset_id = require_id(first.header.dataset_id, "dataset_id")
        self._ctx.records.get_dataset(tenant, dataset_id)
        report = ImageUpload(self._ctx.store, self._ctx.limits, tenant, dataset_id).receive(request_iterator)
        dataset = commit_dataset(self._ctx.records, self._ctx.store, tenant, dataset_id)
        return pb.UploadImagesResponse(accepted=report.accepted, rejected=report.rejected,
                                       dataset=dataset_to_proto(dataset))

    def CommitDataset(self, request: pb.CommitDatasetRequest, context: grpc.ServicerContext):
        dataset_id = require_id(request.dataset_id, "dataset_id")
        dataset = commit_dataset(self._ctx.records, self._ctx.store, current_tenant(), dataset_id)
        return pb.CommitDatasetResponse(dataset=dataset_to_proto(dataset))

    def GetDataset(self, request: pb.GetDatasetRequest, context: grpc.ServicerContext):
        dataset_id = require_id(request.dataset_id, "dataset_id")
        return pb.GetDatasetResponse(dataset=dataset_to_proto(self._ctx.records.get_dataset(current_tenant(),
                                                                                             dataset_id)))

    def ListDatasets(self, request: pb.ListDatasetsRequest, context: grpc.ServicerContext):
        datasets, token = self._ctx.records.list_datasets(
            current_tenant(), require_page_size(request.page_size), request.page_token)
        return pb.ListDatasetsResponse(datasets=[dataset_to_proto(d) for d in datasets], next_page_token=token)
