//! Deleting an organization or an account in the in-memory database: the cascades the SQL
//! schema's foreign keys give `canopy-store` for free, written out. The caller holds the one
//! lock, so the last-owner check and the deletion see the same memberships.

use canopy_kernel::id::{OrganizationId, UserId};
use canopy_tenancy::account::{DeletedAccount, HeldOrganization, TOMBSTONE, scrub_email};
use canopy_tenancy::ports::DeleteAccountError;
use canopy_tenancy::{AuditAction, AuditTarget, InvitationStatus, NewAuditEvent, Role, TargetKind};
use chrono::{DateTime, Utc};
use serde_json::json;

use super::Db;

impl Db {
    /// Removes the organization and everything it owns; `false` when it did not exist.
    pub(super) fn delete_organization(&mut self, id: OrganizationId) -> bool {
        let before = self.organizations.len();
        self.organizations.retain(|o| o.id != id);
        self.memberships.retain(|m| m.org != id);
        self.invitations.retain(|i| i.organization_id != id);
        self.subscriptions.retain(|s| s.organization_id != id);
        self.audit.retain(|e| e.organization_id != id);
        self.organizations.len() < before
    }

    /// The port's `delete_account`, under the caller's lock.
    pub(super) fn delete_account(
        &mut self,
        user: UserId,
        now: DateTime<Utc>,
    ) -> Result<Option<DeletedAccount>, DeleteAccountError> {
        let Some(email) = self
            .users
            .iter()
            .find(|(u, _)| u.id == user)
            .map(|(u, _)| u.email.as_str().to_string())
        else {
            return Ok(None);
        };
        // Where the person stands in each organization: alone, last owner, or one of several.
        let mut alone = vec![];
        let mut leaves = vec![];
        let mut blocking = vec![];
        for m in self.memberships.iter().filter(|m| m.user == user) {
            let others = self
                .memberships
                .iter()
                .filter(|o| o.org == m.org && o.user != user);
            let other_members = others.clone().count() as u64;
            let other_owners = others.filter(|o| o.role == Role::Owner).count();
            let Some(org) = self.organizations.iter().find(|o| o.id == m.org) else {
                continue;
            };
            let held = HeldOrganization {
                id: org.id,
                slug: org.slug.clone(),
                name: org.name.clone(),
                other_members,
            };
            if other_members == 0 {
                alone.push(held);
            } else if m.role == Role::Owner && other_owners == 0 {
                blocking.push(held);
            } else {
                leaves.push((held, m.role));
            }
        }
        if !blocking.is_empty() {
            return Err(DeleteAccountError::LastOwner(blocking));
        }

        for held in &alone {
            self.delete_organization(held.id);
        }
        for (held, role) in &leaves {
            for event in self
                .audit
                .iter_mut()
                .filter(|e| e.organization_id == held.id)
            {
                scrub_email(&mut event.details, &email);
            }
            self.audit.push(NewAuditEvent::new(
                held.id,
                Some(user),
                AuditAction::MemberAccountDeleted,
                AuditTarget::new(TargetKind::Member, user),
                json!({"member": TOMBSTONE, "role": role.as_str()}),
                now,
            ));
        }
        self.invitations
            .retain(|i| i.email.as_str() != email || i.status == InvitationStatus::Pending);
        self.outbox.retain(|q| q.mail.to != email);
        self.memberships.retain(|m| m.user != user);
        self.sessions.retain(|s| s.user_id != user);
        self.api_keys.retain(|k| k.user_id != user);
        self.tokens.retain(|(t, _)| t.user_id != user);
        self.security.retain(|e| e.user_id != user);
        self.users.retain(|(u, _)| u.id != user);
        Ok(Some(DeletedAccount {
            organizations_deleted: alone,
            memberships_ended: leaves.into_iter().map(|(held, _)| held).collect(),
        }))
    }
}
