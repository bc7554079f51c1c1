//! Simulators of the third parties orderflow talks to, for the demo and the tests. Each speaks the
//! real protocol on loopback and can be scripted to be slow or to fail, so our code meets the same
//! bytes and failure modes it meets in production.

pub mod payment;
pub mod smtp;
pub mod storefront;
pub mod supplier;
