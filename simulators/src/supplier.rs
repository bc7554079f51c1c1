//! The print-on-demand supplier's HTTP API, simulated.
