//! Event sources: each turns records from somewhere into [`crate::Event`]s
//! in partition order and drives the pipeline.

pub mod embedded;
pub mod kafka;
pub mod replay;
