//! A browser without JavaScript, for the console's HTTP-level tests: it keeps cookies, sends
//! forms with the page's CSRF token and its own origin, and never follows redirects, so a test
//! sees each answer the way a browser receives it.

use std::collections::BTreeMap;
use std::sync::Mutex;

use reqwest::StatusCode;
use reqwest::header::{HeaderMap, LOCATION, SET_COOKIE};

use crate::TestApp;

/// One answer.
#[derive(Debug)]
pub struct Page {
    /// Status.
    pub status: StatusCode,
    /// Headers.
    pub headers: HeaderMap,
    /// Body as text.
    pub body: String,
}

impl Page {
    /// Where a redirect sends the browser.
    pub fn location(&self) -> Option<&str> {
        self.headers.get(LOCATION).and_then(|v| v.to_str().ok())
    }

    /// The CSRF token the page's forms carry (the first `name="csrf"` field).
    pub fn csrf(&self) -> Option<String> {
        let at = self.body.find("name=\"csrf\" value=\"")? + "name=\"csrf\" value=\"".len();
        let rest = &self.body[at..];
        Some(rest[..rest.find('"')?].to_string())
    }

    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Panics with the body unless the status is `status`.
    #[track_caller]
    pub fn expect(&self, status: StatusCode) -> &Self {
        assert_eq!(self.status, status, "{}", self.body);
        self
    }
}

/// A cookie-keeping, redirect-showing client of one Canopy.
pub struct Visitor {
    /// The server's base URL.
    pub base: String,
    http: reqwest::Client,
    cookies: Mutex<BTreeMap<String, String>>,
    /// The CSRF token of the last page that had one.
    csrf: Mutex<Option<String>>,
}

impl Visitor {
    /// A visitor of `app` with no cookie yet.
    pub fn new(app: &TestApp) -> Self {
        Self::of(&app.server.url())
    }

    /// A visitor of the server at `base`.
    pub fn of(base: &str) -> Self {
        Self {
            base: base.trim_end_matches('/').to_string(),
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("a client"),
            cookies: Mutex::new(BTreeMap::new()),
            csrf: Mutex::new(None),
        }
    }

    /// The `Cookie` header this visitor sends.
    pub fn cookie_header(&self) -> String {
        self.cookies
            .lock()
            .unwrap()
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// A cookie's value.
    pub fn cookie(&self, name: &str) -> Option<String> {
        self.cookies.lock().unwrap().get(name).cloned()
    }

    /// Sets (or replaces) a cookie, as another tab or an attacker would.
    pub fn set_cookie(&self, name: &str, value: &str) {
        self.cookies
            .lock()
            .unwrap()
            .insert(name.to_string(), value.to_string());
    }

    /// The CSRF token of the last page that showed one.
    pub fn csrf(&self) -> String {
        self.csrf.lock().unwrap().clone().unwrap_or_default()
    }

    async fn read(&self, resp: reqwest::Response) -> Page {
        let status = resp.status();
        let headers = resp.headers().clone();
        for value in headers.get_all(SET_COOKIE) {
            let Ok(text) = value.to_str() else { continue };
            let Some((pair, attributes)) = text.split_once(';').or(Some((text, ""))) else {
                continue;
            };
            let Some((name, value)) = pair.split_once('=') else {
                continue;
            };
            let mut cookies = self.cookies.lock().unwrap();
            if attributes.contains("Max-Age=0") || value.is_empty() {
                cookies.remove(name.trim());
            } else {
                cookies.insert(name.trim().to_string(), value.trim().to_string());
            }
        }
        let body = resp.text().await.unwrap_or_default();
        let page = Page {
            status,
            headers,
            body,
        };
        if let Some(token) = page.csrf() {
            *self.csrf.lock().unwrap() = Some(token);
        }
        page
    }

    /// `GET path` with extra headers.
    pub async fn get_with(&self, path: &str, headers: &[(&str, &str)]) -> Page {
        let mut req = self
            .http
            .get(format!("{}{path}", self.base))
            .header("cookie", self.cookie_header());
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        self.read(req.send().await.expect("the server answers"))
            .await
    }

    /// `GET path`.
    pub async fn get(&self, path: &str) -> Page {
        self.get_with(path, &[]).await
    }

    /// Posts `form` to `path` exactly as given, with `headers` (no token or origin added).
    pub async fn post_raw(
        &self,
        path: &str,
        form: &[(&str, &str)],
        headers: &[(&str, &str)],
    ) -> Page {
        let mut req = self
            .http
            .post(format!("{}{path}", self.base))
            .header("cookie", self.cookie_header())
            .form(form);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        self.read(req.send().await.expect("the server answers"))
            .await
    }

    /// Submits a form of ours: `form` plus the current CSRF token, from our own origin.
    pub async fn post(&self, path: &str, form: &[(&str, &str)]) -> Page {
        let token = self.csrf();
        let mut fields: Vec<(&str, &str)> = vec![("csrf", token.as_str())];
        fields.extend_from_slice(form);
        let origin = self.base.clone();
        self.post_raw(path, &fields, &[("origin", origin.as_str())])
            .await
    }

    /// Logs in through the log-in form; the answer is the redirect after it.
    pub async fn log_in(&self, email: &str, password: &str) -> Page {
        self.get("/login").await.expect(StatusCode::OK);
        self.post("/login", &[("email", email), ("password", password)])
            .await
    }

    /// Signs up through the sign-up form.
    pub async fn sign_up(&self, name: &str, email: &str, password: &str) -> Page {
        self.get("/signup").await.expect(StatusCode::OK);
        self.post(
            "/signup",
            &[("name", name), ("email", email), ("password", password)],
        )
        .await
    }

    /// Follows a redirect answer to its page (the way a browser does after a form).
    pub async fn follow(&self, page: &Page) -> Page {
        let to = page.location().expect("a redirect").to_string();
        self.get(&to).await
    }
}
