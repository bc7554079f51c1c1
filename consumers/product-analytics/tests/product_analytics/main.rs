//! product-analytics against the real stack, in one test binary. The archive is read back with
//! pyarrow (`tests/read_archive.py`; `pip install -r tests/requirements.txt`).

mod archive;
mod common;
mod crash;
mod database;
mod dead_letters;
mod redelivery;
