//! Sales reporting against the real stack, in one test binary.

mod common;
mod concurrency;
mod consuming;
mod crash;
mod last_hour;
mod reports;
mod time_zone;
