//! Scenarios that need a topology of their own.
