//! The cloud-account use cases against mocked ports.

use std::sync::Arc;

use canopy_billing::ports::{MockHistoryStore, MockSubscriptionRepository};
use canopy_kernel::ManualClock;
use canopy_kernel::id::{OrganizationId, SessionId, UserId};
use canopy_tenancy::credential::CredentialKind;
use canopy_tenancy::ports::MockApiKeyAccess;
use canopy_tenancy::ports::{
    MockAuditLog, MockCredentialCrypto, MockCredentialRepository, MockHistoryRetention,
    MockInvitationRepository, MockMailRenderer, MockMembershipRepository,
    MockOrganizationRepository, MockOutboxStore, MockSecurityLog, MockUserRepository,
};
use canopy_tenancy::{
    Action, Forbidden, OrgAccess, Organization, Principal, Role, Slug, TenancyConfig, TenancyPorts,
    TenancyService,
};
use chrono::Utc;
use serde_json::json;

use super::*;
use crate::account::{AccountInput, AccountStatus, CloudAccount, CloudAccountId, validate_new};
use crate::external_id::ExternalId;
use crate::health::{AccessFailure, FailureKind};
use crate::ports::{
    MockCloudAccountRepository, MockConnectionTokenRepository, MockExternalIdRepository,
    MockRoleVerifier, MockSecretSource,
};
use canopy_billing::BillingService;
use canopy_kernel::LimitedResource;

fn tenancy_as(role: Role) -> TenancyService {
    let org = Organization {
        id: OrganizationId::new(),
        name: "Acme".into(),
        slug: Slug::from_trusted("acme".into()),
        logo: None,
        metadata: json!({}),
        created_at: Utc::now(),
        updated_at: Utc::now(),
    };
    let mut organizations = MockOrganizationRepository::new();
    organizations
        .expect_find_for_credential()
        .returning(move |_, _, _| {
            Ok(Some((
                Principal {
                    user_id: UserId::new(),
                    credential: CredentialKind::Session(SessionId::new()),
                },
                Some((org.clone(), role)),
            )))
        });
    let mut crypto = MockCredentialCrypto::new();
    crypto.expect_digest().returning(|t| t.to_string());
    TenancyService::new(
        TenancyPorts {
            users: Arc::new(MockUserRepository::new()),
            credentials: Arc::new(MockCredentialRepository::new()),
            organizations: Arc::new(organizations),
            members: Arc::new(MockMembershipRepository::new()),
            invitations: Arc::new(MockInvitationRepository::new()),
            audit: Arc::new(MockAuditLog::new()),
            retention: Arc::new(MockHistoryRetention::new()),
            api_keys: Arc::new(MockApiKeyAccess::new()),
            renderer: Arc::new(MockMailRenderer::new()),
            outbox: Arc::new(MockOutboxStore::new()),
            security_log: Arc::new(MockSecurityLog::new()),
            crypto: Arc::new(crypto),
            clock: Arc::new(ManualClock::new(Utc::now())),
        },
        TenancyConfig::default(),
    )
}

#[derive(Default)]
struct Mocks {
    accounts: MockCloudAccountRepository,
    external_ids: MockExternalIdRepository,
    aws: MockRoleVerifier,
    subscriptions: MockSubscriptionRepository,
    tokens: MockConnectionTokenRepository,
}

impl Mocks {
    async fn service(self, role: Role) -> (CloudAccountService, OrgAccess) {
        let tenancy = tenancy_as(role);
        let access = tenancy.access_by_token("tok", "acme").await.unwrap();
        let mut secrets = MockSecretSource::new();
        secrets.expect_external_id().returning(|| "cnp-ext".into());
        let service = CloudAccountService::new(
            CloudAccountPorts {
                accounts: Arc::new(self.accounts),
                external_ids: Arc::new(self.external_ids),
                tokens: Arc::new(self.tokens),
                tenancy,
                billing: BillingService::new(
                    Arc::new(self.subscriptions),
                    Arc::new(MockHistoryStore::new()),
                    Arc::new(ManualClock::new(Utc::now())),
                ),
                aws: Arc::new(self.aws),
                gcp: Arc::new(crate::ports::MockProjectVerifier::new()),
                secrets: Arc::new(secrets),
                clock: Arc::new(ManualClock::new(Utc::now())),
            },
            CloudAccountConfig {
                trusted_principal: "arn:aws:iam::111122223333:root".into(),
                public_url: "https://console.example.com".into(),
            },
        );
        (service, access)
    }
}

fn aws_input() -> AccountInput {
    AccountInput {
        provider: "aws".into(),
        account_id: Some("123456789012".into()),
        role_arn: Some("arn:aws:iam::123456789012:role/CanopyAccess".into()),
        region: Some("eu-west-1".into()),
        ..Default::default()
    }
}

fn stored(org: canopy_kernel::id::OrganizationId) -> CloudAccount {
    let (identity, settings) = validate_new(&aws_input()).unwrap();
    CloudAccount {
        id: CloudAccountId::new(),
        organization_id: org,
        identity,
        settings,
        status: AccountStatus::Active,
        last_synced_at: None,
        last_error: None,
        placement: None,
        created_by: UserId::new(),
        created_at: Utc::now(),
        updated_at: Utc::now(),
    }
}

#[tokio::test]
async fn a_member_cannot_connect_and_storage_is_never_asked() {
    let mut mocks = Mocks::default();
    mocks.accounts.expect_create().never();
    let (service, access) = mocks.service(Role::Member).await;
    let err = service.connect(&access, &aws_input()).await.unwrap_err();
    assert!(
        matches!(
            err,
            CloudAccountError::Forbidden(Forbidden(Action::ConnectCloudAccount))
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn sync_assumes_the_role_with_the_current_external_id_and_records_the_classified_failure() {
    let mut mocks = Mocks::default();
    mocks
        .external_ids
        .expect_current_or_create()
        .returning(|c| {
            Ok(ExternalId {
                value: "cnp-current".into(),
                ..c
            })
        });
    mocks
        .accounts
        .expect_get()
        .returning(|org, _| Ok(Some(stored(org))));
    mocks
        .aws
        .expect_assume_role()
        .withf(|arn, external_id, session, region| {
            arn.as_str() == "arn:aws:iam::123456789012:role/CanopyAccess"
                && external_id == "cnp-current"
                && session.starts_with("canopy-")
                && region.as_str() == "eu-west-1"
        })
        .times(1)
        .returning(|_, _, _, _| {
            Err(AccessFailure {
                kind: FailureKind::AccessDenied,
                message: "AccessDenied: no".into(),
            })
        });
    mocks
        .accounts
        .expect_record_check()
        .withf(|_, check| check.failure.as_ref().map(|f| f.kind) == Some(FailureKind::AccessDenied))
        .times(1)
        .returning(|org, _| {
            let mut a = stored(org);
            a.status = AccountStatus::Error;
            Ok(Some(a))
        });
    let (service, access) = mocks.service(Role::Admin).await;
    let (account, check) = service.sync(&access, CloudAccountId::new()).await.unwrap();
    assert_eq!(account.status, AccountStatus::Error);
    assert_eq!(check.failure.unwrap().kind, FailureKind::AccessDenied);
}

#[tokio::test]
async fn disconnect_needs_the_account_id_repeated() {
    let mut mocks = Mocks::default();
    mocks
        .accounts
        .expect_get()
        .returning(|org, _| Ok(Some(stored(org))));
    mocks.accounts.expect_delete().never();
    let (service, access) = mocks.service(Role::Owner).await;
    let err = service
        .disconnect(&access, CloudAccountId::new(), "210987654321")
        .await
        .unwrap_err();
    match err {
        CloudAccountError::Invalid(v) => {
            assert_eq!(v.errors[0].rule, "confirmation")
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test]
async fn no_token_is_issued_when_the_plan_has_no_room_for_another_account() {
    use canopy_billing::{SubscribedTier, Subscription, Tier, Usage};
    let mut mocks = Mocks::default();
    mocks.subscriptions.expect_get().returning(|_| {
        Ok(Some(Subscription {
            tier: SubscribedTier::Current(Tier::Individual),
            ..Subscription::free(OrganizationId::new(), Utc::now())
        }))
    });
    mocks.subscriptions.expect_usage().returning(|_, _| {
        Ok(Usage {
            cloud_accounts: 6,
            members: 1,
            pending_invitations: 0,
        })
    });
    mocks.tokens.expect_insert().never();
    let (service, access) = mocks.service(Role::Admin).await;
    let err = service.create_connect_token(&access).await.unwrap_err();
    match err {
        ConnectionError::PlanLimit(limit) => {
            assert_eq!((limit.used, limit.allowed), (6, 6));
            assert_eq!(limit.resource, LimitedResource::CloudAccounts);
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test]
async fn instructions_carry_the_external_id_in_the_trust_policy() {
    let mut mocks = Mocks::default();
    mocks.external_ids.expect_current_or_create().returning(Ok);
    let (service, access) = mocks.service(Role::Admin).await;
    let i = service.connection_instructions(&access).await.unwrap();
    assert_eq!(i.external_id, "cnp-ext");
    assert_eq!(i.trusted_principal, "arn:aws:iam::111122223333:root");
    assert_eq!(
        i.trust_policy["Statement"][0]["Condition"]["StringEquals"]["sts:ExternalId"],
        "cnp-ext"
    );
}
