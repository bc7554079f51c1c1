"""Reads a product-analytics archive with pyarrow, independently of the Rust code that wrote it,
and prints what it found as JSON for the Rust tests to check.

Usage: python3 read_archive.py ARCHIVE_FOLDER

Every file under sold_lines/ is read on its own (its columns, types, compression and rows), then
the whole data set is read the way pandas.read_parquet does, with the Hive `date=` partitions.
"""

import json
import os
import sys

import pyarrow.parquet as pq


def plain(value):
    """Arrow scalars as JSON: timestamps in epoch milliseconds, maps as objects."""
    if hasattr(value, "timestamp"):
        return round(value.timestamp() * 1000)
    if isinstance(value, list):  # a map arrives as a list of (key, value) pairs
        return {k: v for k, v in value}
    return value


def main(root):
    data_set = os.path.join(root, "sold_lines")
    files = []
    for folder, _, names in os.walk(data_set):
        for name in sorted(names):
            path = os.path.join(folder, name)
            parquet = pq.ParquetFile(path)
            meta = parquet.metadata
            table = parquet.read()
            files.append(
                {
                    "path": os.path.relpath(path, root),
                    "columns": table.schema.names,
                    "types": {f.name: str(f.type) for f in table.schema},
                    "nullable": [f.name for f in table.schema if f.nullable],
                    "compression": sorted(
                        {
                            meta.row_group(g).column(c).compression
                            for g in range(meta.num_row_groups)
                            for c in range(meta.num_columns)
                        }
                    ),
                    "rows": [
                        {k: plain(v) for k, v in row.items()}
                        for row in table.to_pylist()
                    ],
                }
            )
    files.sort(key=lambda f: f["path"])
    data_set_rows = []
    if files:
        whole = pq.read_table(data_set)
        for row in whole.select(["order_id", "order_line_id", "date"]).to_pylist():
            row["date"] = str(row["date"])
            data_set_rows.append(row)
    json.dump({"files": files, "data_set_rows": data_set_rows}, sys.stdout)


if __name__ == "__main__":
    main(sys.argv[1])
