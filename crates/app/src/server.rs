//! Starting the server on a listener, for `canopy serve` and for black-box tests.

use std::net::SocketAddr;

use anyhow::Context;
use poem::Server;
use poem::listener::{Acceptor, Listener, TcpListener};
use tokio::task::JoinHandle;

use crate::config::Config;
use crate::http::app;
use crate::state::AppState;

/// A server running in the background.
#[derive(Debug)]
pub struct RunningServer {
    /// Where it listens (the real port when bound to port 0).
    pub addr: SocketAddr,
    /// The server task; finishes on shutdown or error.
    pub task: JoinHandle<std::io::Result<()>>,
}

impl RunningServer {
    /// Base URL, `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

/// Binds `config.bind` and serves `state` until the task is dropped or the process ends.
pub async fn start(config: &Config, state: AppState) -> anyhow::Result<RunningServer> {
    let acceptor = TcpListener::bind(config.server.bind.clone())
        .into_acceptor()
        .await
        .with_context(|| format!("binding {}", config.server.bind))?;
    let addr = acceptor
        .local_addr()
        .first()
        .and_then(|a| a.as_socket_addr().copied())
        .context("listener has no socket address")?;
    let endpoint = app(state, config.server.max_body_bytes);
    let task = tokio::spawn(async move { Server::new_with_acceptor(acceptor).run(endpoint).await });
    Ok(RunningServer { addr, task })
}
