//! The load generator: realistic orders ([`catalogue`]) placed through checkout's
//! `POST /v1/orders` over a chosen number of open connections ([`driver`]), at a fixed rate or as
//! fast as possible, after their payments are scripted at the provider's simulator
//! ([`payments`]). The benchmark (`tools/bench`) drives it as a library; `loadgen` is the same
//! from the command line.

pub mod catalogue;
pub mod driver;
pub mod payments;

pub use payments::register_payments;

/// Raises this process's open-files limit to the hard limit, which children inherit: each
/// connection is a file descriptor, and 10,000 of them exceed the usual soft limit of 1,024.
/// Returns the limit now in force.
pub fn raise_fd_limit() -> std::io::Result<u64> {
    rlimit::increase_nofile_limit(u64::MAX)
}
