//! Starting the server on a listener, for `canopy serve` and for black-box tests.

use std::net::SocketAddr;

use anyhow::Context;
use poem::Server;
use poem::listener::{Acceptor, Listener, TcpAcceptor, TcpListener};
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

/// A bound listener not yet serving: `canopy serve` binds before it opens and migrates the
/// database, so a busy port fails before anything is created.
pub struct Bound {
    acceptor: TcpAcceptor,
    /// Where it listens (the real port when bound to port 0).
    pub addr: SocketAddr,
}

impl std::fmt::Debug for Bound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bound").field("addr", &self.addr).finish()
    }
}

/// Binds `config.server.bind`.
pub async fn bind(config: &Config) -> anyhow::Result<Bound> {
    let acceptor = TcpListener::bind(config.server.bind.clone())
        .into_acceptor()
        .await
        .with_context(|| format!("binding {}", config.server.bind))?;
    let addr = acceptor
        .local_addr()
        .first()
        .and_then(|a| a.as_socket_addr().copied())
        .context("listener has no socket address")?;
    Ok(Bound { acceptor, addr })
}

impl Bound {
    /// Serves `state` on the bound listener until the task is dropped or the process ends.
    pub fn serve(self, config: &Config, state: AppState) -> RunningServer {
        let endpoint = app(state, config.server.max_body_bytes);
        let acceptor = self.acceptor;
        let task =
            tokio::spawn(async move { Server::new_with_acceptor(acceptor).run(endpoint).await });
        RunningServer {
            addr: self.addr,
            task,
        }
    }
}

/// Binds `config.server.bind` and serves `state` (tests and embedders).
pub async fn start(config: &Config, state: AppState) -> anyhow::Result<RunningServer> {
    Ok(bind(config).await?.serve(config, state))
}
