//! The use cases against mocked ports: rules decided before storage is asked.

use std::sync::Arc;

use canopy_kernel::id::{ApiKeyId, SessionId};
use canopy_kernel::{FeatureNotInPlan, ManualClock};
use chrono::Utc;
use serde_json::json;

use super::*;
use crate::account::ClientInfo;
use crate::credential::NewSecret;
use crate::membership::Member;
use crate::organization::Slug;
use crate::ports::{
    CreateUserError, MockApiKeyAccess, MockAuditLog, MockCredentialCrypto,
    MockCredentialRepository, MockHistoryRetention, MockInvitationRepository, MockMailRenderer,
    MockMembershipRepository, MockOrganizationRepository, MockOutboxStore, MockSecurityLog,
    MockUserRepository,
};
use crate::user::{Email, User, UserCredentials};

#[derive(Default)]
struct Mocks {
    users: MockUserRepository,
    credentials: MockCredentialRepository,
    organizations: MockOrganizationRepository,
    members: MockMembershipRepository,
    invitations: MockInvitationRepository,
    api_keys: MockApiKeyAccess,
    renderer: MockMailRenderer,
    outbox: MockOutboxStore,
    crypto: MockCredentialCrypto,
}

impl Mocks {
    fn service(self) -> TenancyService {
        let mut crypto = self.crypto;
        crypto.expect_digest().returning(|t| format!("digest:{t}"));
        TenancyService::new(
            TenancyPorts {
                users: Arc::new(self.users),
                credentials: Arc::new(self.credentials),
                organizations: Arc::new(self.organizations),
                members: Arc::new(self.members),
                invitations: Arc::new(self.invitations),
                audit: Arc::new(MockAuditLog::new()),
                retention: Arc::new(MockHistoryRetention::new()),
                api_keys: Arc::new(self.api_keys),
                renderer: Arc::new(self.renderer),
                outbox: Arc::new(self.outbox),
                security_log: Arc::new(MockSecurityLog::new()),
                crypto: Arc::new(crypto),
                clock: Arc::new(ManualClock::new(Utc::now())),
            },
            TenancyConfig::default(),
        )
    }
}

fn org() -> Organization {
    Organization {
        id: OrganizationId::new(),
        name: "Acme".into(),
        slug: Slug::from_trusted("acme".into()),
        logo: None,
        metadata: json!({}),
        created_at: Utc::now(),
        updated_at: Utc::now(),
    }
}

fn principal() -> Principal {
    Principal {
        user_id: UserId::new(),
        credential: CredentialKind::Session(SessionId::new()),
    }
}

fn member_as(role: Role, org: &Organization, mocks: &mut Mocks) {
    let org = org.clone();
    mocks
        .organizations
        .expect_find_for_credential()
        .returning(move |_, _, _| Ok(Some((principal(), Some((org.clone(), role))))));
}

#[tokio::test]
async fn unknown_email_spends_a_dummy_verification_and_says_the_same_as_a_wrong_password() {
    let mut mocks = Mocks::default();
    mocks
        .users
        .expect_find_credentials()
        .returning(|_| Ok(None));
    mocks
        .crypto
        .expect_verify_dummy()
        .times(1)
        .returning(|_| Ok(()));
    mocks.crypto.expect_verify_password().never();
    let err = mocks
        .service()
        .log_in(
            "nobody@example.com",
            "whatever".into(),
            &ClientInfo::default(),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, SessionError::InvalidCredentials), "{err:?}");

    let mut mocks = Mocks::default();
    mocks.users.expect_find_credentials().returning(|_| {
        Ok(Some(UserCredentials {
            user: User {
                id: UserId::new(),
                email: Email::from_trusted("ada@example.com".into()),
                name: "Ada".into(),
                active_organization_id: None,
                email_verified_at: None,
                created_at: Utc::now(),
                updated_at: Utc::now(),
            },
            password_hash: "hash".into(),
        }))
    });
    mocks
        .crypto
        .expect_verify_password()
        .returning(|_, _| Ok(false));
    mocks.credentials.expect_insert_session().never();
    let wrong = mocks
        .service()
        .log_in("ada@example.com", "nope".into(), &ClientInfo::default())
        .await
        .unwrap_err();
    assert_eq!(wrong.to_string(), err.to_string());
}

#[tokio::test]
async fn non_member_is_told_not_found_never_forbidden() {
    let mut mocks = Mocks::default();
    mocks
        .organizations
        .expect_find_for_credential()
        .returning(|_, _, _| Ok(Some((principal(), None))));
    let err = mocks
        .service()
        .access_by_token("tok", "acme")
        .await
        .unwrap_err();
    assert!(matches!(err, AccessError::NotFound), "{err:?}");

    let mut mocks = Mocks::default();
    mocks
        .organizations
        .expect_find_for_credential()
        .returning(|_, _, _| Ok(None));
    let err = mocks
        .service()
        .access_by_token("tok", "acme")
        .await
        .unwrap_err();
    assert!(matches!(err, AccessError::Unauthenticated), "{err:?}");
}

#[tokio::test]
async fn admin_cannot_remove_an_owner_and_storage_is_never_asked() {
    let organization = org();
    let mut mocks = Mocks::default();
    member_as(Role::Admin, &organization, &mut mocks);
    let owner = UserId::new();
    let org_id = organization.id;
    mocks.members.expect_get().returning(move |_, user| {
        Ok(Some(Member {
            organization_id: org_id,
            user_id: user,
            name: "Root".into(),
            email: Email::from_trusted("root@example.com".into()),
            role: Role::Owner,
            joined_at: Utc::now(),
        }))
    });
    mocks.members.expect_remove().never();
    let service = mocks.service();
    let access = service.access_by_token("tok", "acme").await.unwrap();
    let err = service.remove_member(&access, owner).await.unwrap_err();
    assert!(matches!(err, MemberError::OwnerProtected), "{err:?}");
}

#[tokio::test]
async fn member_cannot_invite_and_admin_cannot_invite_an_owner() {
    let organization = org();
    let mut mocks = Mocks::default();
    member_as(Role::Member, &organization, &mut mocks);
    mocks.invitations.expect_create_replacing().never();
    let service = mocks.service();
    let access = service.access_by_token("tok", "acme").await.unwrap();
    let err = service
        .invite(&access, "x@example.com", Role::Member)
        .await
        .unwrap_err();
    assert!(
        matches!(err, InvitationError::Forbidden(Forbidden(Action::Invite))),
        "{err:?}"
    );

    let mut mocks = Mocks::default();
    member_as(Role::Admin, &organization, &mut mocks);
    mocks.invitations.expect_create_replacing().never();
    let service = mocks.service();
    let access = service.access_by_token("tok", "acme").await.unwrap();
    let err = service
        .invite(&access, "x@example.com", Role::Owner)
        .await
        .unwrap_err();
    assert!(
        matches!(err, InvitationError::OwnerInviteRequiresOwner),
        "{err:?}"
    );
}

#[tokio::test]
async fn sign_up_retries_a_slug_clash_with_a_new_suffix() {
    let mut mocks = Mocks::default();
    mocks
        .crypto
        .expect_hash_password()
        .returning(|_| Ok("hash".into()));
    let mut suffixes = vec!["bbbbbb".to_string(), "aaaaaa".to_string()];
    mocks
        .crypto
        .expect_slug_suffix()
        .times(2)
        .returning(move || suffixes.pop().unwrap());
    mocks.crypto.expect_new_token().returning(|kind| NewSecret {
        plain: format!("{kind}_secret"),
        digest: "d".into(),
        display_prefix: kind.into(),
    });
    let mut seen = vec![];
    mocks
        .users
        .expect_create_with_organization()
        .times(2)
        .returning(move |_, org, _| {
            seen.push(org.slug.to_string());
            if seen.len() == 1 {
                assert_eq!(org.slug.as_str(), "ada-aaaaaa");
                Err(CreateUserError::SlugTaken)
            } else {
                assert_eq!(org.slug.as_str(), "ada-bbbbbb");
                Ok(())
            }
        });
    mocks
        .credentials
        .expect_insert_session()
        .times(1)
        .returning(|_| Ok(()));
    // The address gets its verification link: a single-use token stored as a digest, and
    // the message queued with the link to the console's page.
    mocks
        .users
        .expect_issue_token()
        .withf(|t| {
            t.purpose == crate::account::TokenPurpose::VerifyEmail
                && t.email.as_str() == "ada@example.com"
        })
        .times(1)
        .returning(|_| Ok(()));
    mocks.renderer.expect_render().returning(|mail| {
        let crate::mail::MailContent::VerifyEmail { link, .. } = &mail.content else {
            panic!("{mail:?}");
        };
        assert!(
            link.ends_with("/verify-email?token=cnp_verify_secret"),
            "{link}"
        );
        crate::mail::RenderedMail {
            subject: "s".into(),
            text: link.clone(),
            html: String::new(),
        }
    });
    mocks
        .outbox
        .expect_queue()
        .withf(|m| m.kind == "verify_email" && m.to == "ada@example.com")
        .times(1)
        .returning(|_| Ok(()));
    let signed_in = mocks
        .service()
        .sign_up(
            "Ada@Example.com",
            "Ada",
            "long enough password".into(),
            &ClientInfo::default(),
        )
        .await
        .unwrap();
    assert_eq!(signed_in.user.email.as_str(), "ada@example.com");
    assert_eq!(signed_in.token, "cnp_sess_secret");
}

#[tokio::test]
async fn an_api_key_reaches_an_organization_only_when_its_plan_allows_it() {
    let organization = org();
    let refused = FeatureNotInPlan {
        feature: "api_access".into(),
        feature_name: "API access".into(),
        plan: "free".into(),
        required_tier: "individual".into(),
    };
    for (credential, plan_allows, expect_ok) in [
        (CredentialKind::ApiKey(ApiKeyId::new()), false, false),
        (CredentialKind::ApiKey(ApiKeyId::new()), true, true),
        (CredentialKind::Session(SessionId::new()), false, true),
    ] {
        let mut mocks = Mocks::default();
        let found = organization.clone();
        mocks
            .organizations
            .expect_find_for_credential()
            .returning(move |_, _, _| {
                Ok(Some((
                    Principal {
                        user_id: UserId::new(),
                        credential,
                    },
                    Some((found.clone(), Role::Owner)),
                )))
            });
        let answer = refused.clone();
        // Sessions never ask the plan: the check costs nothing on the common path.
        mocks
            .api_keys
            .expect_refusal()
            .times(usize::from(matches!(credential, CredentialKind::ApiKey(_))))
            .returning(move |_| Ok((!plan_allows).then(|| answer.clone())));
        let result = mocks.service().access_by_token("tok", "acme").await;
        match (expect_ok, result) {
            (true, Ok(access)) => assert_eq!(access.org_id(), organization.id),
            (false, Err(AccessError::NotInPlan(f))) => assert_eq!(f, refused),
            (_, other) => panic!("{credential:?} plan_allows={plan_allows}: {other:?}"),
        }
    }
}
