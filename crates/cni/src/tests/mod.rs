//! Unit tests for the CNI spec types.
#![allow(clippy::unwrap_used)]

mod args;
mod env;
mod error;
mod fuzz;
mod result;
mod version;
