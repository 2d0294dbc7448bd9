//! A real browser for the console's tests and screenshots: Debian's headless Chromium driven
//! through its chromedriver over WebDriver (fantoccini). One chromedriver per [`Browser`], on
//! a free local port, killed on drop.

use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};
use tokio::process::{Child, Command};

/// Where Debian installs Chromium and its driver (`apt-get install chromium chromium-driver`).
pub const CHROMIUM: &str = "/usr/bin/chromium";
/// The driver.
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// How a browser starts.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    /// Viewport width, CSS pixels.
    pub width: u32,
    /// Viewport height.
    pub height: u32,
    /// Whether pages may run JavaScript (off: the progressive-enhancement pass).
    pub javascript: bool,
}

impl Window {
    /// A laptop screen.
    pub const DESKTOP: Window = Window {
        width: 1280,
        height: 860,
        javascript: true,
    };
    /// A phone (390 CSS pixels wide).
    pub const PHONE: Window = Window {
        width: 390,
        height: 844,
        javascript: true,
    };
}

/// A headless Chromium session.
pub struct Browser {
    /// The WebDriver client.
    pub client: Client,
    driver: Child,
    window: Window,
}

fn free_port() -> Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

impl Browser {
    /// Starts chromedriver and a Chromium session with `window`.
    pub async fn start(window: Window) -> Result<Self> {
        if !std::path::Path::new(CHROMEDRIVER).exists() {
            bail!("{CHROMEDRIVER} is missing: apt-get install chromium chromium-driver");
        }
        let port = free_port()?;
        let driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .context("starting chromedriver")?;
        let url = format!("http://127.0.0.1:{port}");
        let mut prefs = json!({});
        if !window.javascript {
            prefs = json!({"profile.managed_default_content_settings.javascript": 2});
        }
        let caps = json!({
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                    "--hide-scrollbars", "--force-device-scale-factor=1", "--lang=en-US",
                    format!("--window-size={},{}", window.width, window.height),
                ],
                "prefs": prefs,
            }
        });
        let caps = match caps {
            Value::Object(map) => map,
            _ => unreachable!("a JSON object"),
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        let client = loop {
            match ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
                .capabilities(caps.clone())
                .connect(&url)
                .await
            {
                Ok(c) => break c,
                Err(e) if Instant::now() > deadline => {
                    return Err(anyhow::anyhow!("chromedriver did not start a session: {e}"));
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        };
        let browser = Self {
            client,
            driver,
            window,
        };
        browser.fit(window.width, window.height).await?;
        Ok(browser)
    }

    /// Makes the viewport (not the window) `width` × `height`.
    async fn fit(&self, width: u32, height: u32) -> Result<()> {
        self.client.set_window_size(width, height).await?;
        let inner = self
            .client
            .execute("return [window.innerWidth, window.innerHeight];", vec![])
            .await?;
        let (w, h) = (
            inner[0].as_u64().unwrap_or(0) as u32,
            inner[1].as_u64().unwrap_or(0) as u32,
        );
        if (w, h) != (width, height) && w > 0 && h > 0 {
            self.client
                .set_window_size(
                    width + (width - w.min(width)),
                    height + (height - h.min(height)),
                )
                .await?;
        }
        Ok(())
    }

    /// Opens `url`.
    pub async fn goto(&self, url: &str) -> Result<()> {
        self.client
            .goto(url)
            .await
            .with_context(|| format!("opening {url}"))
    }

    /// Fills the field `css` with `text` the way typing would (events fire).
    pub async fn fill(&self, css: &str, text: &str) -> Result<()> {
        let field = self.client.find(Locator::Css(css)).await?;
        field.clear().await?;
        field.send_keys(text).await?;
        Ok(())
    }

    /// Chooses the local file `path` in the file input `css`, as a person picking it would.
    pub async fn upload(&self, css: &str, path: &std::path::Path) -> Result<()> {
        let field = self.client.find(Locator::Css(css)).await?;
        field.send_keys(&path.to_string_lossy()).await?;
        Ok(())
    }

    /// Clicks `css`.
    pub async fn click(&self, css: &str) -> Result<()> {
        self.client
            .find(Locator::Css(css))
            .await
            .with_context(|| format!("finding {css}"))?
            .click()
            .await?;
        Ok(())
    }

    /// Runs `script` (a function body returning a value).
    pub async fn eval(&self, script: &str) -> Result<Value> {
        Ok(self.client.execute(script, vec![]).await?)
    }

    /// Waits until `script` returns `true`, up to `timeout`.
    pub async fn wait_until(&self, script: &str, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            if self.eval(script).await?.as_bool() == Some(true) {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("timed out waiting for: {script}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The page's path and query.
    pub async fn path(&self) -> Result<String> {
        let url = self.client.current_url().await?;
        Ok(match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_string(),
        })
    }

    /// Text of the page's body.
    pub async fn text(&self) -> Result<String> {
        Ok(self
            .eval("return document.body.innerText;")
            .await?
            .as_str()
            .unwrap_or_default()
            .to_string())
    }

    /// Logs in through the log-in form at `base`.
    pub async fn log_in(&self, base: &str, email: &str, password: &str) -> Result<()> {
        self.goto(&format!("{base}/login")).await?;
        self.fill("#email", email).await?;
        self.fill("#password", password).await?;
        self.click("form[action='/login'] button[type=submit]")
            .await?;
        self.wait_until(
            "return !location.pathname.startsWith('/login');",
            Duration::from_secs(10),
        )
        .await
    }

    /// A PNG of the whole page (the viewport grown to the document's height, then restored).
    pub async fn screenshot_page(&self) -> Result<Vec<u8>> {
        let height = self
            .eval("return Math.ceil(document.documentElement.scrollHeight);")
            .await?
            .as_u64()
            .unwrap_or(u64::from(self.window.height)) as u32;
        let tall = height.clamp(self.window.height, 6_000);
        self.fit(self.window.width, tall).await?;
        tokio::time::sleep(Duration::from_millis(150)).await;
        let png = self.client.screenshot().await?;
        self.fit(self.window.width, self.window.height).await?;
        Ok(png)
    }

    /// Ends the session and the driver.
    pub async fn close(mut self) -> Result<()> {
        let _ = self.client.clone().close().await;
        let _ = self.driver.kill().await;
        Ok(())
    }
}
