//! E-mail leaves the outbox through a real SMTP server (aiosmtpd, started by the test) on
//! both backends: the message arrives as plain text and HTML with a working link, a server
//! that is down is retried and then delivered once, a refusal is recorded for an admin, and
//! relays racing on one outbox send each message once.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use canopy_e2e::console::Visitor;
use canopy_e2e::smtp::SmtpSink;
use canopy_e2e::{TestApp, on_both_backends};
use canopy_kernel::Clock;
use canopy_tenancy::MailRelay;
use canopy_tenancy::mail::RelayReport;
use reqwest::StatusCode;
use serde_json::json;

const WAIT: Duration = Duration::from_secs(10);

fn relay(app: &TestApp, sink: &SmtpSink, worker: &str) -> MailRelay {
    relay_with_clock(app, sink, worker, app.clock.clone())
}

fn relay_with_clock(
    app: &TestApp,
    sink: &SmtpSink,
    worker: &str,
    clock: Arc<dyn Clock>,
) -> MailRelay {
    // The relay `serve` builds from `[smtp]`, under another lease owner name.
    let built = canopy_app::bootstrap::mail_relay(&sink.config(), &app.state, clock)
        .unwrap()
        .expect("an SMTP host is configured");
    built.named(worker)
}

/// An owner on `tier` (one with room for members), her verification mail already delivered to
/// `sink` so that each test counts only its own messages; her session and organization.
async fn owner(app: &TestApp, sink: &SmtpSink, tier: &str) -> (canopy_e2e::Session, String) {
    let owner = app.sign_up("Ada").await;
    let org = app.create_org_on(&owner, "Mail Corp", tier).await;
    let report = relay(app, sink, "relay-0").drain().await.unwrap();
    assert_eq!(report.sent, 1, "the verification mail, first: {report:?}");
    sink.wait_for(&owner.email, 1, WAIT).await.unwrap();
    (owner, org)
}

/// Invites `email` into `org`; the invitation's id.
async fn invite(app: &TestApp, owner: &canopy_e2e::Session, org: &str, email: &str) -> String {
    let inv = app
        .post(
            &format!("/v1/organizations/{org}/invitations"),
            &owner.token,
            json!({"email": email, "role": "member"}),
        )
        .await;
    assert_eq!(inv.status, StatusCode::CREATED, "{}", inv.body);
    inv.body["id"].as_str().unwrap().to_string()
}

/// How many messages `sink` received for `email`.
fn received_by(sink: &SmtpSink, email: &str) -> usize {
    sink.received()
        .unwrap()
        .iter()
        .filter(|m| m.to == email)
        .count()
}

async fn invitations_arrive_as_text_and_html_with_a_working_link(backend: &str) {
    let app = TestApp::start(backend).await;
    let sink = SmtpSink::start().unwrap();
    let (owner, org) = owner(&app, &sink, "pro").await;
    let id = invite(&app, &owner, &org, "bob.mail@example.com").await;

    let report = relay(&app, &sink, "relay-1").drain().await.unwrap();
    assert_eq!(
        report,
        RelayReport {
            sent: 1,
            retried: 0,
            failed: 0
        }
    );
    let got = sink
        .wait_for("bob.mail@example.com", 1, WAIT)
        .await
        .unwrap();
    assert_eq!(got.len(), 1, "{got:?}");
    let mail = &got[0];
    assert_eq!(mail.from, "no-reply@canopy.test");
    assert!(mail.subject.contains("Mail Corp"), "{}", mail.subject);
    assert!(mail.text.contains("Ada invited you"), "{}", mail.text);
    assert!(
        mail.html.contains("<strong>Mail Corp</strong>"),
        "{}",
        mail.html
    );
    // The Message-ID is the outbox row's: a repeat would be recognisable.
    let row = &app
        .store
        .outbox()
        .all_for("bob.mail@example.com")
        .await
        .unwrap()[0];
    assert_eq!(mail.message_id, format!("{}@canopy.test", row.id));
    // The link opens the invitation page on this server.
    let path = mail.link_path().unwrap();
    assert_eq!(path, format!("/invitations/{id}"));
    let page = Visitor::new(&app).get(&path).await;
    assert_eq!(page.status, StatusCode::OK);
    // Once sent, the outbox keeps no link and no body, and nothing is sent again.
    assert!(row.sent_at.is_some() && row.link().is_none());
    assert!(!row.body.contains(&id) && !row.html.contains(&id));
    assert!(
        app.store
            .outbox()
            .unsent_for("bob.mail@example.com")
            .await
            .unwrap()
            .is_empty()
    );
    let again = relay(&app, &sink, "relay-1").drain().await.unwrap();
    assert_eq!(again, RelayReport::default());
    assert_eq!(received_by(&sink, "bob.mail@example.com"), 1);
}

async fn a_server_that_is_down_is_retried_then_delivered_once(backend: &str) {
    let app = TestApp::start(backend).await;
    let mut sink = SmtpSink::start().unwrap();
    let (owner, org) = owner(&app, &sink, "pro").await;
    sink.stop();
    invite(&app, &owner, &org, "carol.mail@example.com").await;

    let relay = relay(&app, &sink, "relay-1");
    let first = relay.drain().await.unwrap();
    assert_eq!(
        first,
        RelayReport {
            sent: 0,
            retried: 1,
            failed: 0
        }
    );
    let row = &app
        .store
        .outbox()
        .unsent_for("carol.mail@example.com")
        .await
        .unwrap()[0];
    assert_eq!(row.attempts, 1);
    let error = row.last_error.clone().unwrap();
    assert!(error.to_lowercase().contains("connect"), "{error}");
    assert!(row.link().is_some(), "kept until it is sent");

    // Not due yet: the back-off holds even with the server back.
    sink.resume().unwrap();
    assert_eq!(relay.drain().await.unwrap(), RelayReport::default());
    assert_eq!(received_by(&sink, "carol.mail@example.com"), 0);

    app.clock.advance(chrono::Duration::seconds(16));
    assert_eq!(relay.drain().await.unwrap().sent, 1);
    assert_eq!(relay.drain().await.unwrap(), RelayReport::default());
    let got = sink
        .wait_for("carol.mail@example.com", 1, WAIT)
        .await
        .unwrap();
    assert_eq!(got.len(), 1);
    let row = &app
        .store
        .outbox()
        .all_for("carol.mail@example.com")
        .await
        .unwrap()[0];
    assert_eq!(row.attempts, 2);
    assert!(row.sent_at.is_some() && row.last_error.is_none());
}

async fn a_refusal_is_kept_with_the_server_reply_for_an_admin(backend: &str) {
    let app = TestApp::start(backend).await;
    let sink = SmtpSink::start().unwrap();
    let (owner, org) = owner(&app, &sink, "pro").await;
    invite(&app, &owner, &org, "reject.me@example.com").await;

    let report = relay(&app, &sink, "relay-1").drain().await.unwrap();
    assert_eq!(
        report,
        RelayReport {
            sent: 0,
            retried: 0,
            failed: 1
        }
    );
    assert_eq!(received_by(&sink, "reject.me@example.com"), 0);
    // Never tried again, however long one waits.
    app.clock.advance(chrono::Duration::hours(6));
    assert_eq!(
        relay(&app, &sink, "relay-1").drain().await.unwrap(),
        RelayReport::default()
    );

    // The operator's view names the server's reply...
    let report = canopy_app::admin::outbox(&app.store.outbox(), None, 10, true)
        .await
        .unwrap();
    assert!(report.contains("reject.me@example.com"), "{report}");
    assert!(
        report.contains("550") && report.contains("Mailbox unavailable"),
        "{report}"
    );
    // ...and so does the organization's list of pending invitations.
    let list = app
        .get(
            &format!("/v1/organizations/{org}/invitations"),
            &owner.token,
        )
        .await;
    assert_eq!(list.status, StatusCode::OK, "{}", list.body);
    let delivery = &list.body["items"][0]["delivery"];
    assert_eq!(delivery["status"], "failed", "{}", list.body);
    assert!(
        delivery["error"].as_str().unwrap().contains("550"),
        "{delivery}"
    );

    // A temporary refusal is retried instead.
    invite(&app, &owner, &org, "tempfail.me@example.com").await;
    let report = relay(&app, &sink, "relay-1").drain().await.unwrap();
    assert_eq!(report.retried, 1, "{report:?}");
}

async fn racing_relays_send_each_message_once(backend: &str) {
    let app = TestApp::start(backend).await;
    let sink = SmtpSink::start().unwrap();
    let (owner, org) = owner(&app, &sink, "enterprise").await;
    let count = 12;
    for i in 0..count {
        let inv = app
            .post(
                &format!("/v1/organizations/{org}/invitations"),
                &owner.token,
                json!({"email": format!("race{i}@example.com"), "role": "member"}),
            )
            .await;
        assert_eq!(inv.status, StatusCode::CREATED, "{}", inv.body);
    }
    let relays: Vec<MailRelay> = (0..3)
        .map(|n| relay(&app, &sink, &format!("relay-{n}")))
        .collect();
    let reports = futures::future::join_all(relays.iter().map(MailRelay::drain)).await;
    let sent: usize = reports.into_iter().map(|r| r.unwrap().sent).sum();
    assert_eq!(sent, count);
    let got: Vec<_> = sink
        .received()
        .unwrap()
        .into_iter()
        .filter(|m| m.to != owner.email)
        .collect();
    assert_eq!(got.len(), count, "each message once");
    let mut ids: Vec<&str> = got.iter().map(|m| m.message_id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), count);
}

/// The "done when", in the console: a newcomer signs up, the verification e-mail
/// arrives from the mail server and its link verifies the address; they forget their
/// password, the reset e-mail arrives and its link sets a new one; the old sessions end.
async fn a_newcomer_verifies_resets_ends_sessions_and_leaves(backend: &str) {
    let app = TestApp::start(backend).await;
    let sink = SmtpSink::start().unwrap();
    let relay = relay(&app, &sink, "relay-1");
    let email = format!("newcomer-{}@example.com", uuid::Uuid::now_v7().simple());

    let v = Visitor::new(&app);
    let signed = v.sign_up("Nia", &email, "first password ok").await;
    assert_eq!(signed.status, StatusCode::SEE_OTHER, "{}", signed.body);
    let home = v.get("/account").await;
    assert!(
        home.body.contains("Verify your e-mail address"),
        "{}",
        home.body
    );

    assert_eq!(relay.drain().await.unwrap().sent, 1);
    let mail = sink.wait_for(&email, 1, WAIT).await.unwrap().remove(0);
    assert!(
        mail.subject.contains("Confirm your e-mail"),
        "{}",
        mail.subject
    );
    let path = mail.link_path().unwrap();
    assert!(
        path.starts_with("/verify-email?token=cnp_verify_"),
        "{path}"
    );
    // Opening the link shows a button: a mail scanner's GET spends nothing.
    let page = v.get(&path).await;
    assert_eq!(page.status, StatusCode::OK);
    let token = path.split_once("token=").unwrap().1;
    let confirmed = v.post("/verify-email", &[("token", token)]).await;
    assert_eq!(confirmed.status, StatusCode::OK, "{}", confirmed.body);
    assert!(confirmed.body.contains("is verified"), "{}", confirmed.body);
    let account = v.get("/account").await;
    assert!(
        account.body.contains("verified") && !account.body.contains("Verify your e-mail address")
    );

    // Forgotten password: the same page for anyone, the e-mail only for an account.
    let stranger = Visitor::new(&app);
    let _ = stranger.get("/forgot-password").await;
    let asked = stranger
        .post("/forgot-password", &[("email", &email)])
        .await;
    assert_eq!(asked.status, StatusCode::OK);
    assert!(asked.body.contains("If an account has the address"));
    let deadline = std::time::Instant::now() + WAIT;
    while relay.drain().await.unwrap().sent == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "no reset e-mail queued"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mails = sink.wait_for(&email, 2, WAIT).await.unwrap();
    let reset = &mails[1];
    assert!(reset.subject.contains("Reset your"), "{}", reset.subject);
    assert!(
        reset.text.contains("30") || reset.text.contains("until"),
        "{}",
        reset.text
    );
    let path = reset.link_path().unwrap();
    assert!(
        path.starts_with("/reset-password?token=cnp_reset_"),
        "{path}"
    );
    let form = stranger.get(&path).await;
    assert!(form.body.contains("Choose a new password"), "{}", form.body);
    let token = path.split_once("token=").unwrap().1;
    let set = stranger
        .post(
            "/reset-password",
            &[("token", token), ("password", "second password ok")],
        )
        .await;
    assert_eq!(set.status, StatusCode::SEE_OTHER, "{}", set.body);
    assert_eq!(set.location(), Some("/login?done=reset"));
    // Every session ended, the first browser's too; the new password works.
    let after = v.get("/account").await;
    assert_eq!(after.status, StatusCode::SEE_OTHER);
    let again = Visitor::new(&app);
    let logged = again.log_in(&email, "second password ok").await;
    assert_eq!(logged.status, StatusCode::SEE_OTHER, "{}", logged.body);
    // And a notice that the password changed arrives too.
    relay.drain().await.unwrap();
    let all = sink.wait_for(&email, 3, WAIT).await.unwrap();
    assert!(
        all[2].subject.contains("password was changed"),
        "{}",
        all[2].subject
    );

    // Two browsers now: the account page lists both, and ends the other one.
    let phone = Visitor::new(&app);
    assert_eq!(
        phone.log_in(&email, "second password ok").await.status,
        StatusCode::SEE_OTHER
    );
    let listed = again.get("/account").await;
    assert_eq!(
        listed.body.matches("/revoke\"").count(),
        2,
        "{}",
        listed.body
    );
    let ended = again.post("/account/sessions/revoke-others", &[]).await;
    assert_eq!(ended.location(), Some("/account?done=sessions"));
    assert_eq!(phone.get("/account").await.status, StatusCode::SEE_OTHER);

    // And leaving for good: the password, then the log-in page says so; it no longer works.
    let wrong = again
        .post("/account/delete", &[("password", "not the password")])
        .await;
    assert_eq!(wrong.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(wrong.body.contains("This is not your current password"));
    let gone = again
        .post("/account/delete", &[("password", "second password ok")])
        .await;
    assert_eq!(
        gone.location(),
        Some("/login?done=deleted"),
        "{}",
        gone.body
    );
    let farewell = again.get("/login?done=deleted").await;
    assert!(
        farewell.body.contains("Your account is deleted"),
        "{}",
        farewell.body
    );
    let refused = Visitor::new(&app)
        .log_in(&email, "second password ok")
        .await;
    assert_ne!(refused.status, StatusCode::SEE_OTHER);
}

on_both_backends!(
    by_name, needs smtp;
    a_newcomer_verifies_resets_ends_sessions_and_leaves,
    invitations_arrive_as_text_and_html_with_a_working_link,
    a_server_that_is_down_is_retried_then_delivered_once,
    a_refusal_is_kept_with_the_server_reply_for_an_admin,
    racing_relays_send_each_message_once,
);
