//! The decorators read the store once per entry, serve the rest from memory, and read again
//! whenever a change names the organization, time expires what was read, or the channel is
//! down. The store is a mock that counts its calls.

use std::sync::Arc;

use canopy_billing::ports::MockSubscriptionRepository;
use canopy_cloud_org::ports::MockCloudAccountRepository;
use canopy_kernel::id::{InvitationId, UserId};
use canopy_tenancy::ports::{InvitationRepository, MembershipRepository};
use canopy_tenancy::ports::{MockInvitationRepository, MockMembershipRepository};
use canopy_tenancy::{
    AuditAction, AuditTarget, Email, InvitationStatus, NewAuditEvent, Role, TargetKind,
};
use chrono::TimeZone;

use super::*;

/// The member and invitation ports through `cache`.
fn team(
    cache: &OrgReadCache,
    members: MockMembershipRepository,
    invitations: MockInvitationRepository,
) -> (Arc<dyn MembershipRepository>, Arc<dyn InvitationRepository>) {
    let team = Arc::new(ports::CachedTeam {
        cache: cache.clone(),
        members: Arc::new(members),
        invitations: Arc::new(invitations),
    });
    (team.clone(), team)
}

fn up() -> OrgReadCache {
    let cache = OrgReadCache::shared();
    GrantListener::listening(&cache, true);
    cache
}

fn first() -> PageRequest {
    PageRequest {
        limit: 100,
        after: None,
    }
}

fn empty<T>() -> Page<T> {
    Page {
        items: Vec::new(),
        next: None,
    }
}

fn at(secs: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_800_000_000 + secs, 0).unwrap()
}

async fn list(
    accounts: &Arc<dyn canopy_cloud_org::ports::CloudAccountRepository>,
    org: OrganizationId,
) {
    accounts
        .list(org, &AccountFilter::default(), first())
        .await
        .unwrap();
}

#[tokio::test]
async fn an_account_page_is_read_once_until_a_change_names_its_organization() {
    let (mine, theirs) = (OrganizationId::new(), OrganizationId::new());
    let mut store = MockCloudAccountRepository::new();
    store
        .expect_list()
        .withf(move |org, _, _| *org == mine)
        .times(2)
        .returning(|_, _, _| Ok(empty()));
    store
        .expect_list()
        .withf(move |org, _, _| *org == theirs)
        .times(1)
        .returning(|_, _, _| Ok(empty()));
    let cache = up();
    let accounts = cache.wrap_accounts(Arc::new(store));
    list(&accounts, mine).await;
    list(&accounts, mine).await;
    list(&accounts, theirs).await;
    cache.changed((), GrantChange::Data(mine));
    list(&accounts, mine).await;
    list(&accounts, theirs).await;
    assert_eq!(cache.hits_and_misses(), (2, 3));
}

#[tokio::test]
async fn a_write_through_the_decorator_drops_its_organization_at_once() {
    let org = OrganizationId::new();
    let mut store = MockCloudAccountRepository::new();
    store
        .expect_list()
        .times(2)
        .returning(|_, _, _| Ok(empty()));
    store.expect_delete().times(1).returning(|_, _, _| Ok(true));
    let cache = up();
    let accounts = cache.wrap_accounts(Arc::new(store));
    list(&accounts, org).await;
    let audit = NewAuditEvent::new(
        org,
        None,
        AuditAction::CloudAccountDisconnected,
        AuditTarget::new(TargetKind::Organization, org),
        serde_json::Value::Null,
        at(0),
    );
    assert!(
        accounts
            .delete(org, CloudAccountId::new(), audit)
            .await
            .unwrap()
    );
    list(&accounts, org).await;
}

#[tokio::test]
async fn nothing_is_served_while_the_channel_is_down() {
    let org = OrganizationId::new();
    let mut store = MockCloudAccountRepository::new();
    store
        .expect_list()
        .times(4)
        .returning(|_, _, _| Ok(empty()));
    let cache = up();
    let accounts = cache.wrap_accounts(Arc::new(store));
    list(&accounts, org).await;
    GrantListener::listening(&cache, false);
    list(&accounts, org).await;
    list(&accounts, org).await;
    GrantListener::listening(&cache, true);
    // What was kept before the channel went down is gone: read again.
    list(&accounts, org).await;
    list(&accounts, org).await;
}

#[tokio::test]
async fn a_usage_counting_pending_invitations_is_read_again_after_five_seconds() {
    let org = OrganizationId::new();
    let mut store = MockSubscriptionRepository::new();
    let mut calls = 0;
    store.expect_usage().times(3).returning(move |_, _| {
        calls += 1;
        Ok(Usage {
            cloud_accounts: 2,
            members: 1,
            // The third read finds the invitation expired.
            pending_invitations: u64::from(calls < 3),
        })
    });
    let cache = up();
    let subscriptions = cache.wrap_subscriptions(Arc::new(store));
    assert_eq!(
        subscriptions
            .usage(org, at(0))
            .await
            .unwrap()
            .team_members(),
        2
    );
    assert_eq!(
        subscriptions
            .usage(org, at(4))
            .await
            .unwrap()
            .team_members(),
        2
    );
    subscriptions.usage(org, at(5)).await.unwrap();
    assert_eq!(
        subscriptions
            .usage(org, at(11))
            .await
            .unwrap()
            .team_members(),
        1
    );
    // With nothing pending, nothing expires: served until a change.
    assert_eq!(
        subscriptions
            .usage(org, at(3600))
            .await
            .unwrap()
            .team_members(),
        1
    );
}

fn invitation(org: OrganizationId, expires: i64) -> Invitation {
    Invitation {
        id: InvitationId::new(),
        organization_id: org,
        email: Email::parse("invitee@example.com", "email").unwrap(),
        role: Role::Member,
        status: InvitationStatus::Pending,
        invited_by: UserId::new(),
        expires_at: at(expires),
        created_at: at(0),
    }
}

#[tokio::test]
async fn an_invitation_page_is_read_again_once_one_on_it_expired() {
    let org = OrganizationId::new();
    let mut invitations = MockInvitationRepository::new();
    invitations
        .expect_list_pending()
        .times(2)
        .returning(move |_, now, _| {
            Ok(Page {
                items: [invitation(org, 100)]
                    .into_iter()
                    .filter(|i| i.expires_at > now)
                    .collect(),
                next: None,
            })
        });
    let cache = up();
    let (_, invitations) = team(&cache, MockMembershipRepository::new(), invitations);
    // Read at 10 s, kept through 99 s, read again once it expired at 100 s, then kept empty.
    for (secs, pending) in [(10, 1), (99, 1), (100, 0), (500, 0)] {
        let page = invitations.list_pending(org, at(secs), first()).await;
        assert_eq!(page.unwrap().items.len(), pending, "at {secs} s");
    }
}

#[tokio::test]
async fn a_person_s_change_drops_the_member_pages_they_are_on_only() {
    let (ours, other) = (OrganizationId::new(), OrganizationId::new());
    let renamed = UserId::new();
    let member = move |org, user| Member {
        organization_id: org,
        user_id: user,
        name: "Ada".into(),
        email: Email::parse("ada@example.com", "email").unwrap(),
        role: Role::Owner,
        joined_at: at(0),
    };
    let mut members = MockMembershipRepository::new();
    members
        .expect_list()
        .withf(move |org, _| *org == ours)
        .times(2)
        .returning(move |org, _| {
            Ok(Page {
                items: vec![member(org, renamed)],
                next: None,
            })
        });
    members
        .expect_list()
        .withf(move |org, _| *org == other)
        .times(1)
        .returning(move |org, _| {
            Ok(Page {
                items: vec![member(org, UserId::new())],
                next: None,
            })
        });
    let cache = up();
    let (members, _) = team(&cache, members, MockInvitationRepository::new());
    for org in [ours, other] {
        members.list(org, first()).await.unwrap();
    }
    cache.changed((), GrantChange::User(renamed));
    for org in [ours, other] {
        members.list(org, first()).await.unwrap();
    }
}

#[test]
fn a_fragment_goes_with_its_organization_and_is_not_kept_over_a_racing_change() {
    let (mine, theirs) = (OrganizationId::new(), OrganizationId::new());
    let cache = up();
    let mark = cache.mark();
    cache.keep_fragment(mine, "figures".into(), "<p>mine</p>".into(), mark);
    cache.keep_fragment(theirs, "figures".into(), "<p>theirs</p>".into(), mark);
    assert_eq!(
        cache.fragment(mine, "figures").as_deref(),
        Some("<p>mine</p>")
    );
    assert_eq!(cache.fragment(mine, "other"), None);
    cache.changed((), GrantChange::Data(mine));
    assert_eq!(cache.fragment(mine, "figures"), None);
    assert_eq!(
        cache.fragment(theirs, "figures").as_deref(),
        Some("<p>theirs</p>")
    );
    // Built from reads taken before a change was told: not kept.
    cache.keep_fragment(mine, "figures".into(), "<p>stale</p>".into(), mark);
    assert_eq!(cache.fragment(mine, "figures"), None);
    GrantListener::listening(&cache, false);
    assert_eq!(cache.fragment(theirs, "figures"), None);
}
