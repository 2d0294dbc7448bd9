//! Canopy's tenancy and billing domains embedded in another Rust service, over adapters that
//! service writes itself: here, one in-memory database behind every port. The domain rules
//! (owners, roles, plan limits, invitations) come from the crates; only storage is ours.
//!
//! `run` is the story: sign up, create an organization, hit the Free plan's team limit,
//! upgrade, invite and accept. `cargo test` runs it; `cargo run -p canopy-embedding-example`
//! prints it.

mod memory;

use std::sync::Arc;

use canopy_billing::BillingService;
use canopy_credentials::{Argon2Cost, Argon2Crypto};
use canopy_kernel::{Clock, PageRequest, SystemClock};
use canopy_tenancy::account::ClientInfo;
use canopy_tenancy::{InvitationError, Role, TenancyConfig, TenancyPorts, TenancyService};

pub use memory::Memory;

/// The services an embedder gets, wired over `memory`.
pub fn services(memory: &Memory) -> Result<(TenancyService, BillingService), String> {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let billing = BillingService::new(
        Arc::new(memory.clone()),
        Arc::new(memory.clone()),
        clock.clone(),
    );
    // Cheap hashing for an example; production keeps Argon2Cost::default().
    let crypto = Argon2Crypto::new(Argon2Cost {
        memory_kib: 1024,
        iterations: 1,
        parallelism: 1,
    })
    .map_err(|e| e.to_string())?;
    let shared = Arc::new(memory.clone());
    let tenancy = TenancyService::new(
        TenancyPorts {
            users: shared.clone(),
            credentials: shared.clone(),
            organizations: shared.clone(),
            members: shared.clone(),
            invitations: shared.clone(),
            audit: shared.clone(),
            security_log: shared.clone(),
            // Billing answers both plan questions tenancy asks.
            retention: Arc::new(billing.clone()),
            api_keys: Arc::new(billing.clone()),
            renderer: Arc::new(canopy_mail::Templates::new("Embedded")),
            outbox: shared,
            crypto: Arc::new(crypto),
            clock,
        },
        TenancyConfig::default(),
    );
    Ok((tenancy, billing))
}

/// The story; returns what it did, one line per step.
pub async fn run() -> Result<Vec<String>, Box<dyn std::error::Error>> {
    let memory = Memory::default();
    let (tenancy, billing) = services(&memory)?;
    let mut log = vec![];

    let ada = tenancy
        .sign_up(
            "ada@example.com",
            "Ada",
            "correct horse battery".into(),
            &ClientInfo::default(),
        )
        .await?;
    log.push(format!(
        "signed up {} with a personal organization",
        ada.user.email
    ));

    let principal = tenancy.authenticate(&ada.token).await?;
    let acme = tenancy
        .create_organization(&principal, "Acme", Some("acme"))
        .await?;
    let access = tenancy.access_by_token(&ada.token, "acme").await?;
    let plan = billing.subscription(&access).await?;
    log.push(format!(
        "created {} ({}) on the {} plan",
        acme.name, acme.slug, plan.terms.display_name
    ));

    match tenancy
        .invite(&access, "bob@example.com", Role::Member)
        .await
    {
        Err(InvitationError::PlanLimit(limit)) => log.push(format!(
            "inviting Bob refused: {} allows {} team member(s); upgrade to {}",
            limit.plan, limit.allowed, limit.required_tier
        )),
        other => {
            return Err(format!("the Free plan should refuse a second member: {other:?}").into());
        }
    }

    billing.change_tier(&access, "individual").await?;
    let invitation = tenancy
        .invite(&access, "bob@example.com", Role::Member)
        .await?;
    log.push(format!(
        "upgraded to Individual and invited Bob ({} message(s) in the outbox)",
        memory.outbox().len()
    ));

    let bob = tenancy
        .sign_up(
            "bob@example.com",
            "Bob",
            "another good password".into(),
            &ClientInfo::default(),
        )
        .await?;
    let bob_principal = tenancy.authenticate(&bob.token).await?;
    // Bob proves his address with the link of the e-mail sign-up queued, then accepts.
    let link = memory
        .outbox()
        .into_iter()
        .rev()
        .find(|m| m.to == "bob@example.com" && m.kind == "verify_email")
        .and_then(|m| m.link)
        .ok_or("no verification e-mail for Bob")?;
    let token = link.split_once("token=").ok_or("no token in the link")?.1;
    tenancy.confirm_email(token, &ClientInfo::default()).await?;
    log.push("Bob verified his address with the e-mailed link".to_string());
    tenancy
        .accept_invitation(&bob_principal, invitation.id)
        .await?;
    let members = tenancy.list_members(&access, PageRequest::first()).await?;
    log.push(format!(
        "Bob accepted; Acme has {} members: {}",
        members.items.len(),
        members
            .items
            .iter()
            .map(|m| format!("{} ({})", m.name, m.role.as_str()))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    Ok(log)
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn the_embedding_story_runs_on_in_memory_adapters() {
        let log = super::run().await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(log.len(), 6, "{log:#?}");
        assert!(log[2].contains("upgrade to individual"), "{}", log[2]);
        // Ada's and Bob's verification e-mails and Bob's invitation.
        assert!(
            log[3].contains("(2 message(s) in the outbox)"),
            "{}",
            log[3]
        );
        assert!(log[4].contains("verified"), "{}", log[4]);
        assert!(log[5].contains("2 members"), "{}", log[5]);
        assert!(
            log[5].contains("Ada (owner)") && log[5].contains("Bob (member)"),
            "{}",
            log[5]
        );
    }
}
