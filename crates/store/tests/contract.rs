//! Contract tests of every tenancy repository port: one body per behaviour, run on SQLite by
//! plain `cargo test` and on a fresh PostgreSQL database by `.ci/run`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use canopy_billing::Tier;
use canopy_kernel::PageRequest;
use canopy_kernel::id::{ApiKeyId, OrganizationId, SessionId, UserId};
use canopy_store::testing::{
    audit, migrated, now, organization, pending_invitation, put_on_tier, unique,
    user_with_organization,
};
use canopy_store::{Store, contract};
use canopy_tenancy::account::ClientInfo;
use canopy_tenancy::credential::{ApiKey, CredentialKind, Session};
use canopy_tenancy::invitation::InvitationStatus;
use canopy_tenancy::membership::Role;
use canopy_tenancy::organization::{OrgRef, Organization, OrganizationPatch};
use canopy_tenancy::ports::{
    AnswerInvitationError, AuditLog, CreateUserError, CredentialRepository, InvitationRepository,
    MembershipChangeError, MembershipRepository, NewUser, OrganizationRepository, SlugConflict,
    UserRepository,
};
use canopy_tenancy::user::User;
use canopy_tenancy::{AuditAction, AuditTarget, Email, NewAuditEvent, Slug, TargetKind};
use chrono::Duration;

/// Registers a user with a personal organization; returns both.
async fn user(store: &Store, name: &str) -> (User, Organization) {
    user_with_organization(store, name).await.unwrap()
}

/// Lifts the team-member limit: plan limits have their own contract (billing_contract.rs);
/// these tests are about tenancy.
async fn unlimited(store: &Store, org: OrganizationId) {
    put_on_tier(store, org, Tier::Enterprise).await.unwrap();
}

async fn join(store: &Store, org: OrganizationId, user: UserId, role: Role) {
    unlimited(store, org).await;
    let email = store.users().get(user).await.unwrap().unwrap().email;
    let invitation = pending_invitation(org, user, &email, role);
    store
        .invitations()
        .create_replacing(
            invitation.clone(),
            audit(org, AuditAction::InvitationCreated),
        )
        .await
        .unwrap();
    store
        .invitations()
        .accept(
            invitation.id,
            user,
            now(),
            audit(org, AuditAction::InvitationAccepted),
        )
        .await
        .unwrap();
}

contract!(
    user_with_personal_organization_is_stored_atomically,
    duplicate_email_stores_nothing,
    duplicate_slug_is_reported_as_slug_taken,
    organization_is_found_only_by_its_members,
    organizations_are_listed_with_role_and_member_count,
    organization_update_applies_patch_and_refuses_taken_slug,
    deleting_an_organization_removes_what_it_owns,
    last_owner_cannot_be_demoted_or_removed,
    concurrent_demotions_keep_one_owner,
    ownership_transfer_swaps_roles,
    members_are_paginated_in_join_order,
    inviting_again_replaces_the_pending_invitation,
    concurrent_accepts_let_exactly_one_win,
    answering_and_cancelling_at_once_never_deadlock,
    accepting_when_already_member_is_refused,
    cancel_and_reject_only_touch_pending_invitations,
    sessions_authenticate_until_expiry_or_deletion,
    api_keys_authenticate_until_revoked_or_expired,
    audit_events_are_listed_newest_first_and_paginated,
    credential_and_membership_resolve_in_one_call,
);

async fn user_with_personal_organization_is_stored_atomically(store: Store) {
    let (u, org) = user(&store, "ada").await;
    let creds = store
        .users()
        .find_credentials(&u.email)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(creds.user, u);
    assert_eq!(creds.password_hash, "$argon2id$fake");
    let (found, role) = store
        .organizations()
        .find_for_member(&OrgRef::Id(org.id), u.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found, org);
    assert_eq!(role, Role::Owner);
    let events = store
        .audit_log()
        .list(org.id, None, Default::default(), PageRequest::first())
        .await
        .unwrap();
    assert_eq!(events.items.len(), 1);
    assert_eq!(events.items[0].action.as_str(), "organization.created");
}

async fn duplicate_email_stores_nothing(store: Store) {
    let (u, _) = user(&store, "ada").await;
    let org = organization(&unique("other"));
    let again = User {
        id: UserId::new(),
        active_organization_id: Some(org.id),
        ..u.clone()
    };
    let err = store
        .users()
        .create_with_organization(
            NewUser {
                user: again,
                password_hash: "h".into(),
            },
            org.clone(),
            audit(org.id, AuditAction::OrganizationCreated),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, CreateUserError::EmailTaken), "{err:?}");
    assert!(
        !store.organizations().slug_exists(&org.slug).await.unwrap(),
        "the organization must roll back too"
    );
}

async fn duplicate_slug_is_reported_as_slug_taken(store: Store) {
    let (u, org) = user(&store, "ada").await;
    let clash = Organization {
        id: OrganizationId::new(),
        ..organization(org.slug.as_str())
    };
    let err = store
        .organizations()
        .create(
            clash.clone(),
            u.id,
            audit(clash.id, AuditAction::OrganizationUpdated),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, SlugConflict::SlugTaken), "{err:?}");

    let at = now();
    let newcomer = User {
        id: UserId::new(),
        email: Email::from_trusted(format!("{}@example.com", unique("bob"))),
        name: "Bob".into(),
        active_organization_id: Some(clash.id),
        email_verified_at: None,
        created_at: at,
        updated_at: at,
    };
    let err = store
        .users()
        .create_with_organization(
            NewUser {
                user: newcomer.clone(),
                password_hash: "h".into(),
            },
            clash.clone(),
            audit(clash.id, AuditAction::OrganizationUpdated),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, CreateUserError::SlugTaken), "{err:?}");
    assert!(
        store
            .users()
            .find_credentials(&newcomer.email)
            .await
            .unwrap()
            .is_none()
    );
}

async fn organization_is_found_only_by_its_members(store: Store) {
    let (ada, org) = user(&store, "ada").await;
    let (bob, _) = user(&store, "bob").await;
    assert!(
        store
            .organizations()
            .find_for_member(&OrgRef::Slug(org.slug.to_string()), ada.id)
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        store
            .organizations()
            .find_for_member(&OrgRef::Id(org.id), bob.id)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .organizations()
            .find_for_member(&OrgRef::Slug(org.slug.to_string()), bob.id)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .organizations()
            .find_for_member(&OrgRef::Slug("missing-org".into()), ada.id)
            .await
            .unwrap()
            .is_none()
    );
}

async fn organizations_are_listed_with_role_and_member_count(store: Store) {
    let (ada, ada_org) = user(&store, "ada").await;
    let (bob, bob_org) = user(&store, "bob").await;
    join(&store, ada_org.id, bob.id, Role::Member).await;
    let listed = store.organizations().list_for_user(bob.id).await.unwrap();
    assert_eq!(listed.len(), 2);
    assert_eq!(
        listed[0].organization.id, bob_org.id,
        "oldest membership first"
    );
    assert_eq!((listed[0].role, listed[0].member_count), (Role::Owner, 1));
    assert_eq!((listed[1].role, listed[1].member_count), (Role::Member, 2));
    assert_eq!(
        store
            .organizations()
            .list_for_user(ada.id)
            .await
            .unwrap()
            .len(),
        1
    );
}

async fn organization_update_applies_patch_and_refuses_taken_slug(store: Store) {
    let (_, org) = user(&store, "ada").await;
    let (_, other) = user(&store, "bob").await;
    let new_slug = unique("renamed");
    let updated = store
        .organizations()
        .update(
            org.id,
            OrganizationPatch {
                name: Some("Renamed".into()),
                slug: Some(Slug::parse(&new_slug, "slug").unwrap()),
                logo: Some(Some("https://example.com/l.png".into())),
                metadata: None,
            },
            now(),
            audit(org.id, AuditAction::OrganizationUpdated),
        )
        .await
        .unwrap();
    assert_eq!(updated.name, "Renamed");
    assert_eq!(updated.slug.as_str(), new_slug);
    assert_eq!(updated.metadata, org.metadata, "untouched fields stay");
    let err = store
        .organizations()
        .update(
            org.id,
            OrganizationPatch {
                slug: Some(Slug::parse(other.slug.as_str(), "slug").unwrap()),
                ..Default::default()
            },
            now(),
            audit(org.id, AuditAction::OrganizationUpdated),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, SlugConflict::SlugTaken), "{err:?}");
    let missing = store
        .organizations()
        .update(
            OrganizationId::new(),
            OrganizationPatch::default(),
            now(),
            audit(org.id, AuditAction::OrganizationUpdated),
        )
        .await
        .unwrap_err();
    assert!(matches!(missing, SlugConflict::NotFound), "{missing:?}");
}

async fn deleting_an_organization_removes_what_it_owns(store: Store) {
    let (ada, org) = user(&store, "ada").await;
    let (bob, _) = user(&store, "bob").await;
    join(&store, org.id, bob.id, Role::Admin).await;
    store
        .users()
        .set_active_organization(bob.id, Some(org.id), now())
        .await
        .unwrap();
    assert!(store.organizations().delete(org.id).await.unwrap());
    assert!(
        !store.organizations().delete(org.id).await.unwrap(),
        "second delete finds nothing"
    );
    assert!(
        store
            .organizations()
            .find_for_member(&OrgRef::Id(org.id), ada.id)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .memberships()
            .get(org.id, bob.id)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .audit_log()
            .list(org.id, None, Default::default(), PageRequest::first())
            .await
            .unwrap()
            .items
            .is_empty()
    );
    let bob_now = store.users().get(bob.id).await.unwrap().unwrap();
    assert_eq!(
        bob_now.active_organization_id, None,
        "active organization is cleared"
    );
    assert!(!store.organizations().slug_exists(&org.slug).await.unwrap());
}

async fn last_owner_cannot_be_demoted_or_removed(store: Store) {
    let (ada, org) = user(&store, "ada").await;
    let err = store
        .memberships()
        .change_role(
            org.id,
            ada.id,
            Role::Admin,
            audit(org.id, AuditAction::OrganizationUpdated),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, MembershipChangeError::LastOwner), "{err:?}");
    let err = store
        .memberships()
        .remove(
            org.id,
            ada.id,
            audit(org.id, AuditAction::OrganizationUpdated),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, MembershipChangeError::LastOwner), "{err:?}");
    let (bob, _) = user(&store, "bob").await;
    join(&store, org.id, bob.id, Role::Owner).await;
    let demoted = store
        .memberships()
        .change_role(
            org.id,
            ada.id,
            Role::Member,
            audit(org.id, AuditAction::MemberRoleChanged),
        )
        .await
        .unwrap();
    assert_eq!(demoted.role, Role::Member);
    let err = store
        .memberships()
        .remove(
            org.id,
            bob.id,
            audit(org.id, AuditAction::OrganizationUpdated),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, MembershipChangeError::LastOwner),
        "bob is now the only owner"
    );
    store
        .memberships()
        .remove(org.id, ada.id, audit(org.id, AuditAction::MemberRemoved))
        .await
        .unwrap();
    let err = store
        .memberships()
        .remove(
            org.id,
            ada.id,
            audit(org.id, AuditAction::OrganizationUpdated),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, MembershipChangeError::NotFound), "{err:?}");
}

async fn concurrent_demotions_keep_one_owner(store: Store) {
    let (ada, org) = user(&store, "ada").await;
    let mut owners = vec![ada.id];
    for i in 0..3 {
        let (u, _) = user(&store, &format!("owner{i}")).await;
        join(&store, org.id, u.id, Role::Owner).await;
        owners.push(u.id);
    }
    let store = Arc::new(store);
    let tasks: Vec<_> = owners
        .iter()
        .map(|id| {
            let store = store.clone();
            let id = *id;
            tokio::spawn(async move {
                if id.as_uuid().as_bytes()[15] % 2 == 0 {
                    store
                        .memberships()
                        .change_role(
                            org.id,
                            id,
                            Role::Member,
                            audit(org.id, AuditAction::OrganizationUpdated),
                        )
                        .await
                        .map(|_| ())
                } else {
                    store
                        .memberships()
                        .remove(org.id, id, audit(org.id, AuditAction::OrganizationUpdated))
                        .await
                }
            })
        })
        .collect();
    let mut ok = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(()) => ok += 1,
            Err(MembershipChangeError::LastOwner) => {}
            Err(other) => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(ok, 3, "all but one owner step down");
    let members = store
        .as_ref()
        .memberships()
        .list(org.id, PageRequest::first())
        .await
        .unwrap();
    let remaining = members
        .items
        .iter()
        .filter(|m| m.role == Role::Owner)
        .count();
    assert_eq!(remaining, 1);
}

async fn ownership_transfer_swaps_roles(store: Store) {
    let (ada, org) = user(&store, "ada").await;
    let (bob, _) = user(&store, "bob").await;
    join(&store, org.id, bob.id, Role::Member).await;
    store
        .memberships()
        .transfer_ownership(
            org.id,
            ada.id,
            bob.id,
            audit(org.id, AuditAction::OrganizationUpdated),
        )
        .await
        .unwrap();
    let role = |id| {
        let store = store.clone();
        async move {
            store
                .memberships()
                .get(org.id, id)
                .await
                .unwrap()
                .unwrap()
                .role
        }
    };
    assert_eq!(role(bob.id).await, Role::Owner);
    assert_eq!(role(ada.id).await, Role::Admin);
    let err = store
        .memberships()
        .transfer_ownership(
            org.id,
            bob.id,
            UserId::new(),
            audit(org.id, AuditAction::OrganizationUpdated),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, MembershipChangeError::NotFound));
}

async fn members_are_paginated_in_join_order(store: Store) {
    let (ada, org) = user(&store, "ada").await;
    let mut expected = vec![ada.id];
    for i in 0..4 {
        let (u, _) = user(&store, &format!("m{i}")).await;
        join(&store, org.id, u.id, Role::Member).await;
        expected.push(u.id);
    }
    let mut seen = vec![];
    let mut page = PageRequest {
        limit: 2,
        after: None,
    };
    loop {
        let got = store.memberships().list(org.id, page).await.unwrap();
        assert!(got.items.len() <= 2);
        seen.extend(got.items.iter().map(|m| m.user_id));
        match got.next {
            Some(next) => page.after = Some(next),
            None => break,
        }
    }
    assert_eq!(seen, expected);
}

async fn inviting_again_replaces_the_pending_invitation(store: Store) {
    let (ada, org) = user(&store, "ada").await;
    unlimited(&store, org.id).await;
    let carol = Email::from_trusted("carol@example.com".into());
    let make = |role| pending_invitation(org.id, ada.id, &carol, role);
    let first = make(Role::Member);
    let second = make(Role::Admin);
    store
        .invitations()
        .create_replacing(
            first.clone(),
            audit(org.id, AuditAction::OrganizationUpdated),
        )
        .await
        .unwrap();
    store
        .invitations()
        .create_replacing(
            second.clone(),
            audit(org.id, AuditAction::OrganizationUpdated),
        )
        .await
        .unwrap();
    let pending = store
        .invitations()
        .list_pending(org.id, now(), PageRequest::first())
        .await
        .unwrap();
    assert_eq!(pending.items.len(), 1);
    assert_eq!(pending.items[0].id, second.id);
    assert_eq!(pending.items[0].role, Role::Admin);
    let old = store.invitations().get(first.id).await.unwrap().unwrap();
    assert_eq!(old.invitation.status, InvitationStatus::Replaced);
    assert_eq!(old.organization_name, org.name);
    let later = now() + Duration::hours(49);
    assert!(
        store
            .invitations()
            .list_pending(org.id, later, PageRequest::first())
            .await
            .unwrap()
            .items
            .is_empty()
    );
    assert!(
        store
            .invitations()
            .list_for_email(&carol, later)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store
            .invitations()
            .list_for_email(&carol, now())
            .await
            .unwrap()
            .len(),
        1
    );

    // Concurrent invites of one email still leave exactly one pending.
    let store = Arc::new(store);
    let tasks: Vec<_> = (0..6)
        .map(|_| {
            let store = store.clone();
            let inv = make(Role::Member);
            tokio::spawn(async move {
                store
                    .invitations()
                    .create_replacing(inv, audit(org.id, AuditAction::OrganizationUpdated))
                    .await
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    let pending = store
        .invitations()
        .list_pending(org.id, now(), PageRequest::first())
        .await
        .unwrap();
    assert_eq!(pending.items.len(), 1);
}

async fn concurrent_accepts_let_exactly_one_win(store: Store) {
    let (ada, org) = user(&store, "ada").await;
    unlimited(&store, org.id).await;
    let (bob, _) = user(&store, "bob").await;
    let invitation = pending_invitation(org.id, ada.id, &bob.email, Role::Admin);
    store
        .invitations()
        .create_replacing(
            invitation.clone(),
            audit(org.id, AuditAction::OrganizationUpdated),
        )
        .await
        .unwrap();
    let store = Arc::new(store);
    let tasks: Vec<_> = (0..5)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .invitations()
                    .accept(
                        invitation.id,
                        bob.id,
                        now(),
                        audit(org.id, AuditAction::OrganizationUpdated),
                    )
                    .await
            })
        })
        .collect();
    let mut won = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(member) => {
                won += 1;
                assert_eq!(member.role, Role::Admin);
            }
            Err(AnswerInvitationError::NotPending) => {}
            Err(other) => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(won, 1);
    let status = store
        .as_ref()
        .invitations()
        .get(invitation.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status.invitation.status, InvitationStatus::Accepted);
}

/// Accept, reject and cancel of one invitation at once: one wins, the others are told it is
/// no longer pending, and none fails (on PostgreSQL a lock-order mistake shows as a deadlock).
async fn answering_and_cancelling_at_once_never_deadlock(store: Store) {
    let (ada, org) = user(&store, "ada").await;
    unlimited(&store, org.id).await;
    let store = Arc::new(store);
    for _ in 0..15 {
        let (bob, _) = user(&store, "bob").await;
        let invitation = pending_invitation(org.id, ada.id, &bob.email, Role::Member);
        store
            .invitations()
            .create_replacing(
                invitation.clone(),
                audit(org.id, AuditAction::OrganizationUpdated),
            )
            .await
            .unwrap();
        let id = invitation.id;
        let (s1, s2, s3) = (store.clone(), store.clone(), store.clone());
        let accept = tokio::spawn(async move {
            s1.invitations()
                .accept(
                    id,
                    bob.id,
                    now(),
                    audit(org.id, AuditAction::InvitationAccepted),
                )
                .await
                .map(|_| ())
        });
        let reject = tokio::spawn(async move {
            s2.invitations()
                .reject(id, audit(org.id, AuditAction::InvitationRejected))
                .await
        });
        let cancel = tokio::spawn(async move {
            s3.as_ref()
                .invitations()
                .cancel(org.id, id, audit(org.id, AuditAction::InvitationCancelled))
                .await
        });
        let mut won = 0;
        for answer in [accept.await.unwrap(), reject.await.unwrap()] {
            match answer {
                Ok(()) => won += 1,
                Err(AnswerInvitationError::NotPending) => {}
                Err(other) => panic!("unexpected {other:?}"),
            }
        }
        if cancel.await.unwrap().expect("cancel never fails") {
            won += 1;
        }
        assert_eq!(won, 1);
    }
}

async fn accepting_when_already_member_is_refused(store: Store) {
    let (ada, org) = user(&store, "ada").await;
    unlimited(&store, org.id).await;
    let invitation = pending_invitation(org.id, ada.id, &ada.email, Role::Member);
    store
        .invitations()
        .create_replacing(
            invitation.clone(),
            audit(org.id, AuditAction::OrganizationUpdated),
        )
        .await
        .unwrap();
    let err = store
        .invitations()
        .accept(
            invitation.id,
            ada.id,
            now(),
            audit(org.id, AuditAction::OrganizationUpdated),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, AnswerInvitationError::AlreadyMember),
        "{err:?}"
    );
    let after = store
        .invitations()
        .get(invitation.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        after.invitation.status,
        InvitationStatus::Pending,
        "refusal rolls back"
    );
    let role = store
        .memberships()
        .get(org.id, ada.id)
        .await
        .unwrap()
        .unwrap()
        .role;
    assert_eq!(role, Role::Owner, "the owner keeps their role");
}

async fn cancel_and_reject_only_touch_pending_invitations(store: Store) {
    let (ada, org) = user(&store, "ada").await;
    unlimited(&store, org.id).await;
    let (_, other_org) = user(&store, "eve").await;
    let make = || {
        pending_invitation(
            org.id,
            ada.id,
            &Email::from_trusted(format!("{}@example.com", unique("x"))),
            Role::Member,
        )
    };
    let a = make();
    let b = make();
    store
        .invitations()
        .create_replacing(a.clone(), audit(org.id, AuditAction::OrganizationUpdated))
        .await
        .unwrap();
    store
        .invitations()
        .create_replacing(b.clone(), audit(org.id, AuditAction::OrganizationUpdated))
        .await
        .unwrap();
    assert!(
        !store
            .invitations()
            .cancel(
                other_org.id,
                a.id,
                audit(other_org.id, AuditAction::OrganizationUpdated)
            )
            .await
            .unwrap(),
        "other tenant"
    );
    assert!(
        store
            .invitations()
            .cancel(
                org.id,
                a.id,
                audit(org.id, AuditAction::OrganizationUpdated)
            )
            .await
            .unwrap()
    );
    assert!(
        !store
            .invitations()
            .cancel(
                org.id,
                a.id,
                audit(org.id, AuditAction::OrganizationUpdated)
            )
            .await
            .unwrap(),
        "already cancelled"
    );
    let err = store
        .invitations()
        .reject(a.id, audit(org.id, AuditAction::OrganizationUpdated))
        .await
        .unwrap_err();
    assert!(matches!(err, AnswerInvitationError::NotPending));
    store
        .invitations()
        .reject(b.id, audit(org.id, AuditAction::OrganizationUpdated))
        .await
        .unwrap();
    let b_now = store.invitations().get(b.id).await.unwrap().unwrap();
    assert_eq!(b_now.invitation.status, InvitationStatus::Rejected);
}

async fn sessions_authenticate_until_expiry_or_deletion(store: Store) {
    let (ada, _) = user(&store, "ada").await;
    let session = Session {
        id: SessionId::new(),
        user_id: ada.id,
        token_digest: unique("digest"),
        expires_at: now() + Duration::hours(1),
        created_at: now(),
        client: ClientInfo::default(),
    };
    store
        .credentials()
        .insert_session(session.clone())
        .await
        .unwrap();
    let grant = store
        .credentials()
        .authenticate(&session.token_digest, now())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(grant.principal.user_id, ada.id);
    assert_eq!(
        grant.principal.credential,
        CredentialKind::Session(session.id)
    );
    assert_eq!(grant.expires_at, Some(session.expires_at));
    assert!(
        store
            .credentials()
            .authenticate(&session.token_digest, now() + Duration::hours(2))
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .credentials()
            .authenticate("unknown", now())
            .await
            .unwrap()
            .is_none()
    );
    store
        .credentials()
        .delete_session(&session.token_digest)
        .await
        .unwrap();
    assert!(
        store
            .credentials()
            .authenticate(&session.token_digest, now())
            .await
            .unwrap()
            .is_none()
    );
}

async fn api_keys_authenticate_until_revoked_or_expired(store: Store) {
    let (ada, _) = user(&store, "ada").await;
    let (bob, _) = user(&store, "bob").await;
    let key = |expires_at| ApiKey {
        id: ApiKeyId::new(),
        user_id: ada.id,
        name: "ci".into(),
        prefix: "cnp_key_abcd".into(),
        token_digest: unique("kd"),
        expires_at,
        revoked_at: None,
        created_at: now(),
    };
    let forever = key(None);
    let short = key(Some(now() + Duration::days(1)));
    store
        .credentials()
        .insert_api_key(forever.clone())
        .await
        .unwrap();
    store
        .credentials()
        .insert_api_key(short.clone())
        .await
        .unwrap();
    let listed = store.credentials().list_api_keys(ada.id).await.unwrap();
    assert_eq!(
        listed.iter().map(|k| k.id).collect::<Vec<_>>(),
        vec![short.id, forever.id]
    );
    let grant = store
        .credentials()
        .authenticate(&forever.token_digest, now())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        grant.principal.credential,
        CredentialKind::ApiKey(forever.id)
    );
    assert_eq!(grant.expires_at, None);
    assert!(
        store
            .credentials()
            .authenticate(&short.token_digest, now() + Duration::days(2))
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        !store
            .credentials()
            .revoke_api_key(bob.id, forever.id, now())
            .await
            .unwrap(),
        "not bob's key"
    );
    assert!(
        store
            .credentials()
            .revoke_api_key(ada.id, forever.id, now())
            .await
            .unwrap()
    );
    assert!(
        !store
            .credentials()
            .revoke_api_key(ada.id, forever.id, now())
            .await
            .unwrap(),
        "already revoked"
    );
    assert!(
        store
            .credentials()
            .authenticate(&forever.token_digest, now())
            .await
            .unwrap()
            .is_none()
    );
}

async fn audit_events_are_listed_newest_first_and_paginated(store: Store) {
    let (_, org) = user(&store, "ada").await;
    for i in 0..5 {
        store
            .organizations()
            .update(
                org.id,
                OrganizationPatch {
                    name: Some(format!("Name {i}")),
                    ..Default::default()
                },
                now(),
                NewAuditEvent {
                    target: AuditTarget::new(TargetKind::Organization, format!("update-{i}")),
                    ..audit(org.id, AuditAction::OrganizationUpdated)
                },
            )
            .await
            .unwrap();
    }
    let first = store
        .audit_log()
        .list(
            org.id,
            None,
            Default::default(),
            PageRequest {
                limit: 4,
                after: None,
            },
        )
        .await
        .unwrap();
    let targets: Vec<_> = first.items.iter().map(|e| e.target.id.as_str()).collect();
    assert_eq!(targets, ["update-4", "update-3", "update-2", "update-1"]);
    let rest = store
        .audit_log()
        .list(
            org.id,
            None,
            Default::default(),
            PageRequest {
                limit: 4,
                after: first.next,
            },
        )
        .await
        .unwrap();
    let actions: Vec<_> = rest
        .items
        .iter()
        .map(|e| (e.action, e.target.id.as_str()))
        .collect();
    assert_eq!(
        actions,
        [
            (AuditAction::OrganizationUpdated, "update-0"),
            (
                AuditAction::OrganizationCreated,
                org.id.to_string().as_str()
            )
        ]
    );
    assert!(rest.next.is_none());
}

async fn credential_and_membership_resolve_in_one_call(store: Store) {
    let (ada, org) = user(&store, "ada").await;
    let (bob, bob_org) = user(&store, "bob").await;
    let session = Session {
        id: SessionId::new(),
        user_id: ada.id,
        token_digest: unique("sd"),
        expires_at: now() + Duration::hours(1),
        created_at: now(),
        client: ClientInfo::default(),
    };
    store
        .credentials()
        .insert_session(session.clone())
        .await
        .unwrap();
    let key = ApiKey {
        id: ApiKeyId::new(),
        user_id: bob.id,
        name: "k".into(),
        prefix: "p".into(),
        token_digest: unique("kd"),
        expires_at: None,
        revoked_at: None,
        created_at: now(),
    };
    store
        .credentials()
        .insert_api_key(key.clone())
        .await
        .unwrap();

    let (principal, membership) = store
        .organizations()
        .find_for_credential(
            &session.token_digest,
            now(),
            &OrgRef::Slug(org.slug.to_string()),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(principal.credential, CredentialKind::Session(session.id));
    assert_eq!(membership, Some((org.clone(), Role::Owner)));
    let by_id = store
        .organizations()
        .find_for_credential(&session.token_digest, now(), &OrgRef::Id(org.id))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(by_id.1.map(|(o, _)| o.id), Some(org.id));

    // Authenticated but not a member: the caller without the organization.
    let (principal, membership) = store
        .organizations()
        .find_for_credential(&key.token_digest, now(), &OrgRef::Id(org.id))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(principal.user_id, bob.id);
    assert_eq!(principal.credential, CredentialKind::ApiKey(key.id));
    assert_eq!(membership, None);
    let own = store
        .organizations()
        .find_for_credential(&key.token_digest, now(), &OrgRef::Id(bob_org.id))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(own.1.map(|(_, r)| r), Some(Role::Owner));
    let missing = store
        .organizations()
        .find_for_credential(
            &key.token_digest,
            now(),
            &OrgRef::Slug("no-such-org".into()),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(missing.1, None);

    // Expired, revoked and unknown credentials resolve to nothing.
    let later = now() + Duration::hours(2);
    assert!(
        store
            .organizations()
            .find_for_credential(&session.token_digest, later, &OrgRef::Id(org.id))
            .await
            .unwrap()
            .is_none()
    );
    store
        .credentials()
        .revoke_api_key(bob.id, key.id, now())
        .await
        .unwrap();
    assert!(
        store
            .organizations()
            .find_for_credential(&key.token_digest, now(), &OrgRef::Id(bob_org.id))
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .organizations()
            .find_for_credential("nope", now(), &OrgRef::Id(org.id))
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn migrations_are_idempotent() {
    let store = migrated("sqlite").await.unwrap();
    store.migrate().await.unwrap();
    store.ping().await.unwrap();
}
