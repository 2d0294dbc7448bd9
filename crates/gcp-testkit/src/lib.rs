//! A local GCP for tests: Google's OAuth token endpoint (the JWT-bearer grant of service
//! accounts), Resource Manager v3 (`organizations.get`, `folders.list`, `projects.list`,
//! `projects.get`), IAM Credentials `generateAccessToken`, and what detection scans read (log
//! sinks, Security Command Center settings and sources, organization policies, asset feeds),
//! on one ephemeral port, so the google-* crates and yup-oauth2 run against it unchanged with
//! `base_url` and the key's `token_uri`.
//!
//! It issues service-account keys whose assertions it verifies (RS256 against the key it
//! generated), hands out random access tokens and refuses every Resource Manager call without
//! one, pages like Google (`pageToken`, `nextPageToken`), answers errors in Google's JSON shape,
//! and can deny permissions, throttle, add latency, revoke accounts and count calls.
//!
//! Test support only: no production crate depends on it.

mod controls;
mod handlers;
mod impersonation;
mod keys;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use poem::listener::{Acceptor, Listener, TcpListener};
use poem::{EndpointExt, Route, Server, get, post};

/// The permission `organizations.get` needs.
pub const ORGANIZATIONS_GET: &str = "resourcemanager.organizations.get";
/// The permission `folders.list` needs.
pub const FOLDERS_LIST: &str = "resourcemanager.folders.list";
/// The permission `projects.list` needs.
pub const PROJECTS_LIST: &str = "resourcemanager.projects.list";
/// The permission `projects.get` needs.
pub const PROJECTS_GET: &str = "resourcemanager.projects.get";
/// The permission Cloud Logging `sinks.list` needs (organizations, folders, projects).
pub const LOGGING_SINKS_LIST: &str = "logging.sinks.list";
/// The permission Security Command Center `organizations.getOrganizationSettings` needs.
pub const SCC_SETTINGS_GET: &str = "securitycenter.organizationsettings.get";
/// The permission Security Command Center `organizations.sources.list` needs.
pub const SCC_SOURCES_LIST: &str = "securitycenter.sources.list";
/// The permission Org Policy v2 `policies.list` needs.
pub const ORG_POLICIES_LIST: &str = "orgpolicy.policies.list";
/// The permission Cloud Asset `feeds.list` needs.
pub const ASSET_FEEDS_LIST: &str = "cloudasset.feeds.list";

/// Calls answered so far, per method (throttled and refused ones included).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Calls {
    /// Token endpoint requests.
    pub token: u64,
    /// `organizations.get`.
    pub get_organization: u64,
    /// `folders.list` (each page counts).
    pub list_folders: u64,
    /// `projects.list` (each page counts).
    pub list_projects: u64,
    /// `projects.get`.
    pub get_project: u64,
    /// IAM Credentials `generateAccessToken`.
    pub generate_access_token: u64,
    /// Cloud Logging `sinks.list` (each page counts).
    pub list_sinks: u64,
    /// Security Command Center `getOrganizationSettings`.
    pub get_scc_settings: u64,
    /// Security Command Center `sources.list` (each page counts).
    pub list_scc_sources: u64,
    /// Org Policy `policies.list` (each page counts).
    pub list_policies: u64,
    /// Cloud Asset `feeds.list`.
    pub list_feeds: u64,
}

impl Calls {
    /// Resource Manager calls of every method.
    pub fn resource_manager(&self) -> u64 {
        self.get_organization + self.list_folders + self.list_projects + self.get_project
    }

    /// Calls of the APIs a detection scan reads.
    pub fn scan(&self) -> u64 {
        self.list_sinks
            + self.get_scc_settings
            + self.list_scc_sources
            + self.list_policies
            + self.list_feeds
    }
}

#[derive(Debug, Clone)]
struct Organization {
    display_name: String,
    customer_id: String,
}

#[derive(Debug, Clone)]
struct Folder {
    parent: String,
    display_name: String,
}

#[derive(Debug, Clone)]
struct Project {
    number: u64,
    parent: String,
    display_name: String,
    state: String,
}

#[derive(Debug)]
struct State {
    /// By name, `organizations/N`.
    organizations: BTreeMap<String, Organization>,
    /// By name, `folders/N`.
    folders: BTreeMap<String, Folder>,
    /// By project id.
    projects: BTreeMap<String, Project>,
    denied_resources: HashSet<String>,
    denied_permissions: HashSet<String>,
    page_size: usize,
    latency: Duration,
    throttle: u64,
    issued_accounts: HashSet<String>,
    revoked: HashSet<String>,
    /// Access token -> the account it was issued to.
    tokens: HashMap<String, String>,
    /// Service account -> the accounts allowed to impersonate it.
    impersonators: HashMap<String, HashSet<String>>,
    calls: Calls,
    in_flight: usize,
    max_in_flight: usize,
    /// What detection scans read.
    controls: controls::Controls,
}

impl State {
    /// Whether `resource` or any ancestor of it is denied: IAM grants inherit downwards, so
    /// a denial does too.
    fn denied(&self, resource: &str) -> bool {
        let mut current = Some(resource.to_string());
        let mut hops = 0;
        while let Some(name) = current {
            if self.denied_resources.contains(&name) || hops > 64 {
                return true;
            }
            hops += 1;
            current = self.folders.get(&name).map(|f| f.parent.clone());
        }
        false
    }
}

#[derive(Debug)]
struct Shared {
    state: Mutex<State>,
    token_uri: String,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A running local GCP. Dropping it does not stop the server; it ends with the test runtime.
#[derive(Debug, Clone)]
pub struct FakeGcp {
    addr: SocketAddr,
    shared: Arc<Shared>,
}

impl FakeGcp {
    /// Starts on an ephemeral local port. The first start in a process generates the RSA key.
    pub async fn start() -> std::io::Result<Self> {
        let acceptor = TcpListener::bind("127.0.0.1:0").into_acceptor().await?;
        let addr = acceptor
            .local_addr()
            .first()
            .and_then(|a| a.as_socket_addr().copied())
            .ok_or_else(|| std::io::Error::other("listener has no socket address"))?;
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                organizations: BTreeMap::new(),
                folders: BTreeMap::new(),
                projects: BTreeMap::new(),
                denied_resources: HashSet::new(),
                denied_permissions: HashSet::new(),
                page_size: 100,
                latency: Duration::ZERO,
                throttle: 0,
                issued_accounts: HashSet::new(),
                revoked: HashSet::new(),
                tokens: HashMap::new(),
                impersonators: HashMap::new(),
                calls: Calls::default(),
                in_flight: 0,
                max_in_flight: 0,
                controls: controls::Controls::default(),
            }),
            token_uri: format!("http://{addr}/token"),
        });
        // Generated here rather than inside the first token request, whose client may be
        // running against a timeout.
        let _ = keys::issued();
        let app = Route::new()
            .at("/token", post(handlers::issue_token))
            .at("/v3/organizations/:id", get(handlers::get_organization))
            .at("/v3/folders", get(handlers::list_folders))
            .at("/v3/projects", get(handlers::list_projects))
            .at("/v3/projects/:id", get(handlers::get_project))
            .at(
                "/v1/projects/-/serviceAccounts/:rest",
                post(impersonation::generate_access_token),
            )
            .at("/v2/:kind/:id/sinks", get(controls::list_sinks))
            .at("/v2/:kind/:id/policies", get(controls::list_policies))
            .at(
                "/v1/organizations/:id/organizationSettings",
                get(controls::scc_settings),
            )
            .at("/v1/organizations/:id/sources", get(controls::scc_sources))
            .at("/v1/organizations/:id/feeds", get(controls::list_feeds))
            .data(shared.clone());
        tokio::spawn(Server::new_with_acceptor(acceptor).run(app));
        Ok(Self { addr, shared })
    }

    /// The Resource Manager base URL to give the hub (ends with `/`, as it requires).
    pub fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    /// The token endpoint the issued keys name.
    pub fn token_uri(&self) -> String {
        self.shared.token_uri.clone()
    }

    /// A full service-account key JSON for `client_email`, signed by the key this fake trusts.
    pub fn service_account_key_json(&self, client_email: &str) -> String {
        self.shared
            .lock()
            .issued_accounts
            .insert(client_email.to_string());
        keys::key_json(keys::issued(), client_email, &self.shared.token_uri)
    }

    /// A well-formed key JSON for `client_email` whose private key this fake never issued (a
    /// deleted or foreign key): its assertions are refused with `invalid_grant`.
    pub fn foreign_key_json(&self, client_email: &str) -> String {
        keys::key_json(keys::foreign(), client_email, &self.shared.token_uri)
    }

    /// Lets `by` impersonate `target` (`roles/iam.serviceAccountTokenCreator` on `target`).
    pub fn allow_impersonation(&self, target: &str, by: &str) {
        self.shared
            .lock()
            .impersonators
            .entry(target.to_string())
            .or_default()
            .insert(by.to_string());
    }

    /// Disables a service account: new assertions get `invalid_grant` and its access tokens
    /// stop working.
    pub fn revoke(&self, client_email: &str) {
        self.shared.lock().revoked.insert(client_email.to_string());
    }

    /// Access tokens issued so far (to check none leaks into messages).
    pub fn issued_tokens(&self) -> Vec<String> {
        self.shared.lock().tokens.keys().cloned().collect()
    }

    /// Adds `organizations/{id_number}`; returns that name.
    pub fn add_organization(
        &self,
        id_number: u64,
        display_name: &str,
        customer_id: &str,
    ) -> String {
        let name = format!("organizations/{id_number}");
        self.shared.lock().organizations.insert(
            name.clone(),
            Organization {
                display_name: display_name.to_string(),
                customer_id: customer_id.to_string(),
            },
        );
        name
    }

    /// Adds a folder `folders/N` under `parent` (an organization or folder name).
    pub fn add_folder(&self, name: &str, parent: &str, display_name: &str) {
        self.shared.lock().folders.insert(
            name.to_string(),
            Folder {
                parent: parent.to_string(),
                display_name: display_name.to_string(),
            },
        );
    }

    /// Adds a project; `state` is Google's (`ACTIVE`, `DELETE_REQUESTED`).
    pub fn add_project(
        &self,
        project_id: &str,
        number: u64,
        parent: &str,
        display_name: &str,
        state: &str,
    ) {
        self.shared.lock().projects.insert(
            project_id.to_string(),
            Project {
                number,
                parent: parent.to_string(),
                display_name: display_name.to_string(),
                state: state.to_string(),
            },
        );
    }

    /// Moves a folder under another parent, as `folders.move` does.
    pub fn move_folder(&self, folder: &str, new_parent: &str) {
        if let Some(f) = self.shared.lock().folders.get_mut(folder) {
            f.parent = new_parent.to_string();
        }
    }

    /// Changes a project's lifecycle state.
    pub fn set_project_state(&self, project_id: &str, state: &str) {
        if let Some(p) = self.shared.lock().projects.get_mut(project_id) {
            p.state = state.to_string();
        }
    }

    /// Deletes a project outright (past its 30 days).
    pub fn remove_project(&self, project_id: &str) {
        self.shared.lock().projects.remove(project_id);
    }

    /// Denies every call on `folder` and below it (listing its children, getting its
    /// projects) with 403 `PERMISSION_DENIED`.
    pub fn deny_folder(&self, folder: &str) {
        self.shared
            .lock()
            .denied_resources
            .insert(folder.to_string());
    }

    /// Denies `permission` (one of the constants of this crate) everywhere.
    pub fn deny_all(&self, permission: &str) {
        self.shared
            .lock()
            .denied_permissions
            .insert(permission.to_string());
    }

    /// Lifts every denial and every throttled permission.
    pub fn allow_everything(&self) {
        let mut state = self.shared.lock();
        state.denied_permissions.clear();
        state.denied_resources.clear();
        state.controls.throttled.clear();
    }

    /// Items per page at most (default 100); the client's `pageSize` may ask for fewer.
    pub fn set_page_size(&self, n: usize) {
        self.shared.lock().page_size = n.max(1);
    }

    /// Delay before every API answer (the token endpoint excepted).
    pub fn set_latency(&self, latency: Duration) {
        self.shared.lock().latency = latency;
    }

    /// Answers the next `n` API calls with 429 `RESOURCE_EXHAUSTED`.
    pub fn throttle_next(&self, n: u64) {
        self.shared.lock().throttle = n;
    }

    /// Every call so far.
    pub fn calls(&self) -> Calls {
        self.shared.lock().calls
    }

    /// Zeroes the call counts and the observed concurrency.
    pub fn reset_calls(&self) {
        let mut state = self.shared.lock();
        state.calls = Calls::default();
        state.max_in_flight = 0;
    }

    /// Most API calls ever in progress at once.
    pub fn max_in_flight(&self) -> usize {
        self.shared.lock().max_in_flight
    }
}

#[cfg(test)]
mod tests {
    use base64::Engine as _;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    /// One HTTP/1.1 exchange over a raw socket: the status code and the body.
    async fn http(fake: &FakeGcp, request: String) -> (u16, String) {
        let mut stream = tokio::net::TcpStream::connect(fake.addr).await.unwrap();
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut raw = String::new();
        stream.read_to_string(&mut raw).await.unwrap();
        let code = raw
            .split(' ')
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        let body = raw.split("\r\n\r\n").nth(1).unwrap_or_default().to_string();
        (code, body)
    }

    async fn get(fake: &FakeGcp, path: &str, token: Option<&str>) -> (u16, String) {
        let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
        http(
            fake,
            format!("GET {path} HTTP/1.1\r\nHost: x\r\n{auth}Connection: close\r\n\r\n"),
        )
        .await
    }

    async fn token(fake: &FakeGcp, key: &keys::Rsa, iss: &str) -> (u16, String) {
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let claims = serde_json::json!({"iss": iss, "aud": fake.token_uri(), "iat": now,
            "exp": now + 600, "scope": "https://www.googleapis.com/auth/cloud-platform"});
        let mut jwt = format!(
            "{}.{}",
            b64.encode(r#"{"alg":"RS256","typ":"JWT"}"#),
            b64.encode(claims.to_string())
        );
        let sig = b64.encode(key.sign(jwt.as_bytes()));
        jwt = format!("{jwt}.{sig}");
        let body = format!(
            "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion={jwt}"
        );
        http(
            fake,
            format!(
                "POST /token HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n\
                 Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            ),
        )
        .await
    }

    #[tokio::test]
    async fn only_tokens_it_issued_to_live_accounts_open_resource_manager() {
        let fake = FakeGcp::start().await.unwrap();
        fake.add_organization(7, "example.com", "C7");
        let sa = "sa@p.iam.gserviceaccount.com";
        let _ = fake.service_account_key_json(sa);

        assert_eq!(get(&fake, "/v3/organizations/7", None).await.0, 401);
        assert_eq!(
            get(&fake, "/v3/organizations/7", Some("ya29.guess"))
                .await
                .0,
            401
        );

        let (code, body) = token(&fake, keys::foreign(), sa).await;
        assert_eq!(
            (code, body.contains("invalid_grant")),
            (400, true),
            "{body}"
        );
        let (code, body) = token(&fake, keys::issued(), "stranger@p.iam.gserviceaccount.com").await;
        assert_eq!(
            (code, body.contains("invalid_grant")),
            (400, true),
            "{body}"
        );

        let (code, body) = token(&fake, keys::issued(), sa).await;
        assert_eq!(code, 200, "{body}");
        let answer: serde_json::Value = serde_json::from_str(&body).unwrap();
        let access = answer["access_token"].as_str().unwrap().to_string();
        assert_eq!(fake.issued_tokens(), vec![access.clone()]);

        let (code, body) = get(&fake, "/v3/organizations/7", Some(&access)).await;
        assert_eq!(code, 200, "{body}");
        let org: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(org["directoryCustomerId"], "C7");

        fake.revoke(sa);
        assert_eq!(
            get(&fake, "/v3/organizations/7", Some(&access)).await.0,
            401
        );
        assert_eq!(token(&fake, keys::issued(), sa).await.0, 400);
        assert_eq!(fake.calls().token, 4);
        assert_eq!(fake.calls().get_organization, 4);
    }

    #[tokio::test]
    async fn a_denied_folder_denies_its_subtree_and_throttling_counts_down() {
        let fake = FakeGcp::start().await.unwrap();
        fake.add_organization(7, "example.com", "C7");
        fake.add_folder("folders/1", "organizations/7", "A");
        fake.add_folder("folders/2", "folders/1", "B");
        fake.add_project("deep-project", 9, "folders/2", "Deep", "ACTIVE");
        let _ = fake.service_account_key_json("sa@p.iam.gserviceaccount.com");
        let (_, body) = token(&fake, keys::issued(), "sa@p.iam.gserviceaccount.com").await;
        let answer: serde_json::Value = serde_json::from_str(&body).unwrap();
        let access = answer["access_token"].as_str().unwrap().to_string();

        fake.deny_folder("folders/1");
        let (code, body) = get(&fake, "/v3/folders?parent=folders%2F2", Some(&access)).await;
        assert_eq!(code, 403);
        let error: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(error["error"]["status"], "PERMISSION_DENIED");
        assert_eq!(error["error"]["code"], 403);
        assert_eq!(
            get(&fake, "/v3/projects/deep-project", Some(&access))
                .await
                .0,
            403
        );
        let (code, _) = get(&fake, "/v3/folders?parent=organizations%2F7", Some(&access)).await;
        assert_eq!(code, 200, "the organization above stays readable");

        fake.throttle_next(2);
        let path = "/v3/projects?parent=organizations%2F7";
        assert_eq!(get(&fake, path, Some(&access)).await.0, 429);
        assert_eq!(get(&fake, path, Some(&access)).await.0, 429);
        assert_eq!(get(&fake, path, Some(&access)).await.0, 200);
    }
}
