//! Shared by the cluster crate's integration tests.
#![allow(dead_code)]

pub mod inproc;
pub mod support;
