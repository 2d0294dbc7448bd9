//! `canopy serve --demo`: a demo user and organization with several AWS accounts whose
//! metrics come from the demo cloud (one of them refusing access), created through the same
//! services as any other, so a newcomer sees a full dashboard without AWS credentials.

use anyhow::Context;
use canopy_cloud_org::AccountInput;
use canopy_tenancy::{OrganizationError, SessionError};

use crate::state::AppState;

/// The demo user's email.
pub const EMAIL: &str = "demo@canopy.dev";
/// The demo user's password (the demo holds nothing worth protecting).
pub const PASSWORD: &str = "canopy demo password";
/// The demo organization's slug.
pub const SLUG: &str = "demo";
/// The demo account whose role refuses Canopy, to show partial failure.
pub const FAILING_ACCOUNT: &str = "210987654006";

const ACCOUNTS: [(&str, &str, &str, &str); 6] = [
    ("210987654001", "Production US", "production", "us-east-1"),
    ("210987654002", "Production EU", "production", "eu-west-1"),
    ("210987654003", "Marketing", "production", "us-east-1"),
    ("210987654004", "Staging", "staging", "us-east-1"),
    ("210987654005", "Development", "development", "us-west-2"),
    (FAILING_ACCOUNT, "Legacy mailer", "production", "us-east-1"),
];

/// What the seed did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seeded {
    /// Created the user, the organization (on Pro) and its accounts.
    Created {
        /// The organization's slug.
        slug: String,
    },
    /// The demo user existed already (a restart on the same database): nothing changed.
    AlreadyThere,
}

/// Creates the demo user, organization and accounts, once.
pub async fn seed(state: &AppState) -> anyhow::Result<Seeded> {
    let signed_in = match state
        .tenancy
        .sign_up(EMAIL, "Demo", PASSWORD.to_string())
        .await
    {
        Ok(s) => s,
        Err(SessionError::EmailTaken) => return Ok(Seeded::AlreadyThere),
        Err(e) => return Err(e).context("creating the demo user"),
    };
    let principal = state.tenancy.authenticate(&signed_in.token).await?;
    let org = match state
        .tenancy
        .create_organization(&principal, "Demo Corp", Some(SLUG))
        .await
    {
        Ok(org) => org,
        Err(OrganizationError::SlugTaken) => state
            .tenancy
            .create_organization(&principal, "Demo Corp", None)
            .await
            .context("creating the demo organization")?,
        Err(e) => return Err(e).context("creating the demo organization"),
    };
    state
        .billing
        .set_tier_as_operator(&org.id.to_string(), "pro")
        .await
        .context("putting the demo organization on Pro")?;
    let access = state
        .tenancy
        .access(&principal, &org.id.to_string())
        .await?;
    for (account, alias, environment, region) in ACCOUNTS {
        state
            .cloud
            .connect(
                &access,
                &AccountInput {
                    provider: "aws".into(),
                    account_id: Some(account.into()),
                    role_arn: Some(format!("arn:aws:iam::{account}:role/CanopyAccess")),
                    region: Some(region.into()),
                    alias: Some(alias.into()),
                    environment: Some(environment.into()),
                    ses_domains: vec![format!(
                        "mail.{}.demo.canopy.dev",
                        alias.to_lowercase().replace(' ', "-")
                    )],
                    ..AccountInput::default()
                },
            )
            .await
            .with_context(|| format!("connecting demo account {alias}"))?;
    }
    Ok(Seeded::Created {
        slug: org.slug.to_string(),
    })
}
