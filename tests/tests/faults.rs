//! PostgreSQL going away under a running server: while it is unreachable, requests answer
//! 503 with `Retry-After` (not 500 `internal`) and `/readyz` says so; once it is back, no
//! request fails, also when every pooled connection died while idle (a restart, a failover, a
//! proxy's idle timeout).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use canopy_e2e::console::Visitor;
use canopy_e2e::proxy::{TcpProxy, target, through};
use canopy_e2e::{Options, TestApp};
use canopy_store::{Store, StoreConfig};
use reqwest::{Method, StatusCode};

/// A server whose database connections go through a proxy the test can cut.
async fn behind_a_proxy() -> (TestApp, TcpProxy, String) {
    let url = canopy_store::testing::fresh_postgres_url().await.unwrap();
    let direct = Store::connect(&StoreConfig::new(url.clone()))
        .await
        .unwrap();
    direct.migrate().await.unwrap();
    direct.close().await.unwrap();
    let proxy = TcpProxy::start(target(&url).unwrap()).await.unwrap();
    let store = Store::connect(&StoreConfig::new(through(&url, proxy.addr)))
        .await
        .unwrap();
    let app = TestApp::start_on(store, Options::default()).await;
    (app, proxy, url)
}

#[tokio::test]
#[ignore = "needs postgres"]
async fn an_unreachable_database_is_503_with_retry_after_and_nothing_fails_once_it_is_back() {
    let (app, proxy, _) = behind_a_proxy().await;
    let ada = app.sign_up("Ada").await;
    assert_eq!(app.get("/v1/me", &ada.token).await.status, StatusCode::OK);
    let browser = Visitor::new(&app);
    let home = browser.log_in(&ada.email, "correct horse battery").await;
    let dashboard = browser.follow(&home).await.location().unwrap().to_string();
    browser.get(&dashboard).await.expect(StatusCode::OK);

    proxy.down();
    for path in ["/v1/me", "/v1/organizations"] {
        let resp = app.get(path, &ada.token).await;
        resp.assert_problem(StatusCode::SERVICE_UNAVAILABLE, "database_unavailable");
        let wait: u64 = resp.headers["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!(wait >= 1, "{path}");
    }
    let ready = app.call(Method::GET, "/readyz", None, None).await;
    ready.assert_problem(StatusCode::SERVICE_UNAVAILABLE, "database_unavailable");
    assert!(ready.headers.contains_key("retry-after"));
    // The console says the same in a page, and keeps the person signed in (a store that
    // cannot answer is not a missing session).
    for path in [dashboard.as_str(), "/orgs", "/"] {
        let page = browser.get(path).await;
        assert_eq!(
            page.status,
            StatusCode::SERVICE_UNAVAILABLE,
            "{path}: {}",
            page.body
        );
        assert!(page.header("retry-after").is_some(), "{path}");
        assert!(page.body.contains("Nothing was lost"), "{path}");
    }

    proxy.up();
    browser.get(&dashboard).await.expect(StatusCode::OK);
    let mut statuses = vec![];
    for _ in 0..20 {
        statuses.push(app.get("/v1/me", &ada.token).await.status);
    }
    assert!(
        statuses.iter().all(|s| *s == StatusCode::OK),
        "after the database came back: {statuses:?}"
    );
    let ready = app.call(Method::GET, "/readyz", None, None).await;
    assert_eq!(ready.status, StatusCode::OK);
}

#[tokio::test]
#[ignore = "needs postgres"]
async fn connections_that_died_while_idle_fail_no_request() {
    let (app, proxy, _) = behind_a_proxy().await;
    let ada = app.sign_up("Ada").await;
    // Warm the pool: several connections, all open.
    let warm: Vec<_> = (0..8)
        .map(|_| app.get("/v1/organizations", &ada.token))
        .collect();
    for resp in futures::future::join_all(warm).await {
        assert_eq!(resp.status, StatusCode::OK);
    }
    // Every pooled connection dies while the server is idle, and the database is back at
    // once: what a restart looks like to a replica that had nothing to do meanwhile.
    proxy.down();
    proxy.up();
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let mut failures = vec![];
    for i in 0..12 {
        let resp = app.get("/v1/organizations", &ada.token).await;
        if resp.status != StatusCode::OK {
            failures.push(format!("request {i}: {} {}", resp.status, resp.body));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}
