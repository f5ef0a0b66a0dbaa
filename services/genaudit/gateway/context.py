"""Everything the servicers share, built once per gateway process from the settings."""

from __future__ import annotations

from dataclasses import dataclass

from genaudit.gateway.remote_screener import RemoteScreener
from genaudit.gateway.screening import MicroBatcher, Screener
from genaudit.images import ImageLimits
from genaudit.jobs import RecordStore, open_record_store
from genaudit.settings import Settings
from genaudit.storage import ObjectStore, open_store
from genaudit.worker.dispatch import Dispatcher, open_dispatcher
from genaudit.worker.schedules import ScheduleService


@dataclass
class GatewayContext:
    settings: Settings
    records: RecordStore
    store: ObjectStore
    dispatcher: Dispatcher
    schedules: ScheduleService
    limits: ImageLimits
    batcher: MicroBatcher | None = None  # in front of the screener; None: no detector model configured

    def close(self) -> None:
        """Stop accepting screening work, stop schedules, then let the dispatcher finish its job."""
        if self.batcher is not None:
            self.batcher.close()
            if isinstance(self.batcher.screener, RemoteScreener):
                self.batcher.screener.close()
        self.schedules.close()
        self.dispatcher.close()


def build_context(settings: Settings, screener: Screener | None = None) -> GatewayContext:
    """Stores, dispatcher and schedules from the settings (embedded or distributed alike).

    No I/O happens here; ``serve`` checks that the backends answer. In embedded mode the dispatcher is
    the in-process worker sharing this process's record store and object store.
    """
    records = open_record_store(settings)
    store = open_store(settings)
    dispatcher = open_dispatcher(settings, records, store)
    return GatewayContext(
        settings=settings, records=records, store=store, dispatcher=dispatcher,
        schedules=ScheduleService(settings, records, dispatcher),
        limits=ImageLimits.from_settings(settings),
        batcher=MicroBatcher(screener) if screener is not None else None,
    )
