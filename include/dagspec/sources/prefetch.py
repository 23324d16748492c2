"""A reader thread that runs ahead of the consumer by a few batches.

The database read (a scan, a COPY stream) and the Parquet encoding both release the GIL, so with
the read in its own thread an extract takes about as long as the slower of the two, not their
sum. The queue between them holds at most `depth` batches, which is what bounds memory.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Iterator

import pyarrow as pa

_DONE = object()


def prefetched(batches: Callable[[], Iterable[pa.RecordBatch]], *, depth: int, name: str,
               close: Callable[[], None], cancel: Callable[[], None]) -> Iterator[pa.RecordBatch]:
    """Yield what `batches()` yields, read in a thread. `close` runs in that thread when it ends; `cancel`
    runs in the caller's when it gives up early (an error downstream), to stop the read at its source."""
    chunks: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: object) -> bool:
        while not stop.is_set():
            try:
                chunks.put(item, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        source = iter(batches())
        try:
            for batch in source:
                if not put(batch):
                    return
            put(_DONE)
        except BaseException as exc:  # handed to the consumer, which raises it in its own thread
            put(exc)
        finally:
            try:
                if hasattr(source, "close"):
                    source.close()  # leave the source's own `with` blocks before its connection closes
            except Exception:
                pass
            try:
                close()
            except Exception:
                pass

    worker = threading.Thread(target=produce, name=name, daemon=True)
    worker.start()
    try:
        while True:
            item = chunks.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        if worker.is_alive():
            try:
                cancel()
            except Exception:
                pass
        worker.join()
