//! A real mail server for the tests: aiosmtpd (PyPI) running `tests/smtp/sink.py` on a local
//! port, storing each accepted message as a file the test reads back. It refuses recipients
//! whose local part starts with `reject` (550) or `tempfail` (451), and can be stopped and
//! started again on the same port to play a mail server that is down.

use std::io::{self, BufRead};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use canopy_app::config::SmtpConfig;

/// One received message, parsed.
#[derive(Debug, Clone)]
pub struct Received {
    /// `To:` address.
    pub to: String,
    /// `From:` as written.
    pub from: String,
    /// Subject.
    pub subject: String,
    /// `Message-ID` without angle brackets.
    pub message_id: String,
    /// The text/plain alternative, decoded.
    pub text: String,
    /// The text/html alternative, decoded.
    pub html: String,
}

impl Received {
    /// The console path of the first link to this server in the text body (`/verify-email?...`).
    pub fn link_path(&self) -> Option<String> {
        let start = self.text.find("http")?;
        let url: String = self.text[start..]
            .chars()
            .take_while(|c| !c.is_whitespace())
            .collect();
        let after_scheme = url.find("://")? + 3;
        let path_start = url[after_scheme..].find('/')? + after_scheme;
        Some(url[path_start..].to_string())
    }
}

static SEQ: AtomicU32 = AtomicU32::new(0);

/// The running sink.
#[derive(Debug)]
pub struct SmtpSink {
    /// Its port on 127.0.0.1.
    pub port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("smtp/sink.py")
}

impl SmtpSink {
    /// Starts a sink on a free port. Fails with what to install when aiosmtpd is missing.
    pub fn start() -> anyhow::Result<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let dir = std::env::temp_dir().join(format!(
            "canopy-smtp-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)?;
        let mut sink = Self {
            port,
            dir,
            child: None,
        };
        sink.resume()?;
        Ok(sink)
    }

    /// Starts the server again on the same port (after [`SmtpSink::stop`]).
    pub fn resume(&mut self) -> anyhow::Result<()> {
        if self.child.is_some() {
            return Ok(());
        }
        let mut child = Command::new("python3")
            .arg(script())
            .arg("127.0.0.1")
            .arg(self.port.to_string())
            .arg(&self.dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("starting python3 for the SMTP sink")?;
        let stdout = child.stdout.take().context("sink stdout")?;
        let mut line = String::new();
        io::BufReader::new(stdout).read_line(&mut line)?;
        if line.trim() != "ready" {
            let _ = child.kill();
            bail!(
                "the SMTP sink did not start (is aiosmtpd installed? `python3 -m pip install \
                 aiosmtpd`): {line:?}"
            );
        }
        self.child = Some(child);
        Ok(())
    }

    /// Stops the server: connections to its port are refused until [`SmtpSink::resume`].
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The `[smtp]` configuration that sends here (no TLS, no AUTH: a local relay).
    pub fn config(&self) -> SmtpConfig {
        SmtpConfig {
            host: Some("127.0.0.1".into()),
            port: Some(self.port),
            security: "none".into(),
            from: "Canopy <no-reply@canopy.test>".into(),
            timeout_secs: 5,
            ..SmtpConfig::default()
        }
    }

    /// Every message received so far, in arrival order.
    pub fn received(&self) -> anyhow::Result<Vec<Received>> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(&self.dir)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "eml"))
            .collect();
        files.sort();
        files
            .iter()
            .map(|path| {
                let raw = std::fs::read(path)?;
                let message = mail_parser::MessageParser::default()
                    .parse(&raw)
                    .with_context(|| format!("{} is not a message", path.display()))?;
                let address = |a: Option<&mail_parser::Address>| {
                    a.and_then(|a| a.first())
                        .and_then(|a| a.address())
                        .unwrap_or_default()
                        .to_string()
                };
                Ok(Received {
                    to: address(message.to()),
                    from: address(message.from()),
                    subject: message.subject().unwrap_or_default().to_string(),
                    message_id: message.message_id().unwrap_or_default().to_string(),
                    text: message
                        .body_text(0)
                        .map(|t| t.into_owned())
                        .unwrap_or_default(),
                    html: message
                        .body_html(0)
                        .map(|t| t.into_owned())
                        .unwrap_or_default(),
                })
            })
            .collect()
    }

    /// The messages to `to`, waiting up to `within` for at least `count` of them.
    pub async fn wait_for(
        &self,
        to: &str,
        count: usize,
        within: Duration,
    ) -> anyhow::Result<Vec<Received>> {
        let deadline = Instant::now() + within;
        loop {
            let mine: Vec<Received> = self
                .received()?
                .into_iter()
                .filter(|m| m.to.eq_ignore_ascii_case(to))
                .collect();
            if mine.len() >= count || Instant::now() > deadline {
                return Ok(mine);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
