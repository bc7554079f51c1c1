//! An SMTP sink: a real SMTP server on loopback that stores what it receives.
