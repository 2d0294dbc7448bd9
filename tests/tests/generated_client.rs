//! The Rust client generated from `openapi/openapi.json` (crate `canopy-client`) drives the
//! real server as a customer's program would: sign up, create an organization, invite and
//! accept, connect an account, read the dashboard, and meet typed errors. It compiles only if
//! progenitor accepts the document, and each call fails if the wire breaks the document.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use canopy_client::types::{
    AccountStatusDto, ConnectAccountRequest, CreateOrganizationRequest, InviteRequest,
    LogInRequest, ProviderDto, RangeDto, RoleDto, SignUpRequest, TokenRequest,
};
use canopy_client::{Client, Error, with_token};
use canopy_e2e::{Options, TestApp, random_aws_account};

async fn the_generated_client_drives_the_whole_story(backend: &str) {
    let app = TestApp::start_with(
        backend,
        Options {
            // Metrics from the demo cloud, so the dashboard has data without AWS.
            demo: true,
            ..Options::default()
        },
    )
    .await;
    let url = app.server.url();
    let anonymous = Client::new(&url);

    let plans = anonymous.list_plans().send().await.unwrap().into_inner();
    assert!(plans.plans.len() >= 4);

    let ada = anonymous
        .sign_up()
        .body(
            SignUpRequest::builder()
                .email("ada@client.example")
                .name("Ada")
                .password("correct horse battery"),
        )
        .send()
        .await
        .unwrap()
        .into_inner();
    let ada_api = with_token(&url, &ada.token).unwrap();

    let org = ada_api
        .create_organization()
        .body(
            CreateOrganizationRequest::builder()
                .name("Client Corp")
                .slug(Some("client-corp".parse().unwrap())),
        )
        .send()
        .await
        .unwrap()
        .into_inner();
    assert_eq!(org.slug, "client-corp");

    // Typed errors: the same slug again is a Problem with its stable code.
    let taken = ada_api
        .create_organization()
        .body(
            CreateOrganizationRequest::builder()
                .name("Again")
                .slug(Some("client-corp".parse().unwrap())),
        )
        .send()
        .await
        .unwrap_err();
    match taken {
        Error::ErrorResponse(problem) => {
            assert_eq!(problem.status().as_u16(), 409);
            assert_eq!(problem.code, "slug_taken");
            assert!(problem.errors.is_empty());
        }
        other => panic!("expected a typed problem, got {other:?}"),
    }

    // Free allows one member: a second is refused with the plan's numbers, typed.
    let invite = |email: &'static str| {
        ada_api
            .create_invitation()
            .org("client-corp")
            .body(InviteRequest::builder().email(email).role(RoleDto::Member))
            .send()
    };
    match invite("bob@client.example").await.unwrap_err() {
        Error::ErrorResponse(problem) => {
            assert_eq!(problem.status().as_u16(), 402);
            assert_eq!(problem.code, "plan_limit");
            assert_eq!(problem.required_tier.as_deref(), Some("individual"));
        }
        other => panic!("expected a plan limit, got {other:?}"),
    }
    ada_api
        .change_subscription()
        .org("client-corp")
        .body_map(|b| b.tier(canopy_client::types::SelfServiceTierDto::Pro))
        .send()
        .await
        .unwrap();
    let invitation = invite("bob@client.example").await.unwrap().into_inner();

    let bob = anonymous
        .sign_up()
        .body(
            SignUpRequest::builder()
                .email("bob@client.example")
                .name("Bob")
                .password("another good password"),
        )
        .send()
        .await
        .unwrap()
        .into_inner();
    let bob_api = with_token(&url, &bob.token).unwrap();
    // Bob confirms his address with the link the outbox holds before he may accept.
    assert!(!bob.user.email_verified);
    let verified = anonymous
        .verify_email()
        .body(
            TokenRequest::builder()
                .token(app.outbox_token("bob@client.example", "verify_email").await),
        )
        .send()
        .await
        .unwrap()
        .into_inner();
    assert_eq!(verified.purpose, "email_verified");
    assert!(verified.user.email_verified);
    assert!(bob_api.get_me().send().await.unwrap().user.email_verified);
    let received = bob_api.list_my_invitations().send().await.unwrap();
    assert!(received.iter().any(|i| i.invitation.id == invitation.id));
    bob_api
        .accept_invitation()
        .id(invitation.id)
        .send()
        .await
        .unwrap();
    let members = ada_api
        .list_members()
        .org("client-corp")
        .send()
        .await
        .unwrap()
        .into_inner();
    assert_eq!(members.items.len(), 2);

    // Connect an AWS account by hand: pending until its first successful check.
    let account_id = random_aws_account();
    let connected = ada_api
        .connect_cloud_account()
        .org("client-corp")
        .body(
            ConnectAccountRequest::builder()
                .provider(ProviderDto::Aws)
                .account_id(Some(account_id.parse().unwrap()))
                .role_arn(Some(
                    format!("arn:aws:iam::{account_id}:role/CanopyAccess")
                        .parse()
                        .unwrap(),
                ))
                .region(Some("us-east-1".parse().unwrap()))
                .alias(Some("Production".parse().unwrap())),
        )
        .send()
        .await
        .unwrap()
        .into_inner();
    assert_eq!(connected.status, AccountStatusDto::Pending);

    // The dashboard, read by Bob (a member): the account answered, so it is active now.
    let dashboard = bob_api
        .get_dashboard()
        .org("client-corp")
        .range(RangeDto::X24h)
        .send()
        .await
        .unwrap()
        .into_inner();
    assert_eq!(dashboard.organization.slug, "client-corp");
    assert_eq!(dashboard.accounts.len(), 1);
    assert!(
        dashboard.metrics.errors.is_empty(),
        "{:?}",
        dashboard.metrics.errors
    );
    assert!(dashboard.metrics.totals.send > 0.0);
    let after = ada_api
        .get_cloud_account()
        .org("client-corp")
        .id(connected.id)
        .send()
        .await
        .unwrap();
    assert_eq!(after.status, AccountStatusDto::Active);

    // Another tenant's organization is a typed 404, not a 403.
    let stranger = anonymous
        .log_in()
        .body(
            LogInRequest::builder()
                .email(canopy_app::demo::EMAIL)
                .password(canopy_app::demo::PASSWORD),
        )
        .send()
        .await
        .unwrap()
        .into_inner();
    let stranger_api = with_token(&url, &stranger.token).unwrap();
    match stranger_api
        .get_organization()
        .org("client-corp")
        .send()
        .await
        .unwrap_err()
    {
        Error::ErrorResponse(problem) => assert_eq!(problem.status().as_u16(), 404),
        other => panic!("expected 404, got {other:?}"),
    }
}

canopy_e2e::on_both_backends!(by_name; the_generated_client_drives_the_whole_story);
