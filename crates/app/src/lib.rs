//! Canopy's application crate: the poem-openapi HTTP API, configuration, the composition root
//! and the `canopy` binary. The only crate that knows every adapter.

pub mod admin;
pub mod api;
pub mod bootstrap;
pub mod config;
pub mod connect_cli;
pub mod demo;
pub mod http;
pub mod openapi;
pub mod relay;
pub mod server;
pub mod state;
pub mod worker;

pub use config::Config;
pub use http::{app, openapi_json};
pub use server::{RunningServer, start};
pub use state::AppState;
