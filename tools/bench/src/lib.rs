//! The benchmark harness behind `scripts/bench.sh` (the `orderflow-bench` binary drives the
//! phases): the stored results ([`results`]), their comparison with the baseline and the report
//! ([`report`]), the chart ([`chart`]), and what the phases measure with ([`memory`], [`cpu`], [`prom`]).

pub mod chart;
pub mod cpu;
pub mod memory;
pub mod prom;
pub mod report;
pub mod results;
