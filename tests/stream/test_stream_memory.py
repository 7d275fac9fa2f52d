"""A streaming run's memory does not grow with its input: reading the input holds one slice
at a time, whatever the number of row groups read before."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from zgpu_pandas._stream_read import iter_located


def test_reading_a_parquet_input_holds_one_slice_not_every_row_group_read(
    tmp_path: Path,
) -> None:
    # 40 row groups of text that does not compress: what a reader keeps shows in full
    rng = np.random.default_rng(0)
    path = tmp_path / "in.parquet"
    with pq.ParquetWriter(path, pa.schema([("id", pa.int64()), ("review", pa.string())])) as w:
        for g in range(40):
            text = [rng.bytes(48).hex() for _ in range(5_000)]
            ids = np.arange(g * 5_000, (g + 1) * 5_000)
            w.write_table(pa.table({"id": ids, "review": text}))
    meta = pq.ParquetFile(path).metadata
    group = max(meta.row_group(k).total_byte_size for k in range(meta.num_row_groups))
    pool = pa.default_memory_pool()
    base, high, rows = pool.bytes_allocated(), 0, 0
    for _, _, batch in iter_located([path], text_columns={"review"}, slice_rows=5_000):
        rows += batch.num_rows
        high = max(high, pool.bytes_allocated() - base)
        del batch
    assert rows == 200_000
    # a slice, its decoding and the reader's buffers: a few row groups' worth (4 measured),
    # not the 40 read (a reader that kept every row group it read held them all at the end)
    assert high < 10 * group, (high, group)
