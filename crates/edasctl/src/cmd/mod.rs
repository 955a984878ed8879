//! The command groups of `edasctl`, one module each. A new EDAS operation is one more
//! [`crate::client::ops`] constant and one more subcommand in its group.

pub mod admin;
pub mod app;
pub mod change_order;
pub mod configuration;
pub mod configure;
pub mod context;
pub mod deploy;
pub mod instances;
pub mod notify;
pub mod params;
pub mod release_policy;
pub mod render;
pub mod service;
