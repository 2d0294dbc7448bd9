//! Plan & billing: the organization's plan and price, usage meters against its limits, what
//! an upgrade would unlock, and (for the owner) changing tier; plus the public pricing page,
//! drawn from the same tier table the limits are enforced from.

use askama::Template;
use canopy_billing::{
    Exceeded, Feature, PLANS, Price, SubscribedTier, SubscriptionError, Tier, UsageReport,
};
use canopy_kernel::LimitedResource;
use poem::http::StatusCode;
use poem::web::{Data, Form, Path};
use poem::{Request, Response, handler};
use serde::Deserialize;

use super::check_form;
#[cfg(test)]
use super::tier_name;
use crate::ConsoleState;
use crate::chrome::{self, Chrome};
use crate::error::{Failure, page, redirect};
use crate::format;
use crate::session;

/// One usage meter.
struct Meter {
    label: &'static str,
    used: u64,
    limit: String,
    /// Share of the limit in use, 0–100 (100 when unlimited is never reached: 0).
    percent: u64,
    over: bool,
}

/// One tier as a choice or a pricing column.
struct TierCard {
    tier: &'static str,
    name: &'static str,
    price: String,
    accounts: String,
    members: String,
    history: String,
    features: Vec<(&'static str, bool)>,
    current: bool,
    self_service: bool,
}

fn money(cents: u64) -> String {
    if cents.is_multiple_of(100) {
        format!("${}", format::count((cents / 100) as f64))
    } else {
        format!("${}.{:02}", cents / 100, cents % 100)
    }
}

fn limit_text(limit: Option<u32>, one: &str, many: &str) -> String {
    limit.map_or_else(
        || format!("Unlimited {many}"),
        |n| super::counted(u64::from(n), one, many),
    )
}

fn cards(current: Option<SubscribedTier>) -> Vec<TierCard> {
    PLANS
        .iter()
        .map(|p| TierCard {
            tier: p.tier.as_str(),
            name: p.display_name,
            price: p.price_monthly_cents.map_or_else(
                || "Custom".to_string(),
                |c| {
                    if c == 0 {
                        "$0".into()
                    } else {
                        format!("{}/month", money(u64::from(c)))
                    }
                },
            ),
            accounts: limit_text(p.max_accounts, "cloud account", "cloud accounts"),
            members: limit_text(p.max_team_members, "team member", "team members"),
            history: p.history_retention_days.map_or_else(
                || "History kept forever".into(),
                |d| format!("{d} days of history"),
            ),
            features: Feature::ALL
                .iter()
                .map(|f| (f.display_name(), p.has(*f)))
                .collect(),
            current: current == Some(SubscribedTier::Current(p.tier)),
            self_service: p.tier != Tier::Enterprise,
        })
        .collect()
}

#[derive(Template)]
#[template(path = "billing/page.html")]
struct BillingPage {
    chrome: Chrome,
    slug: String,
    plan: &'static str,
    price: String,
    legacy: bool,
    grace_until: Option<String>,
    meters: Vec<Meter>,
    exceeded: Vec<String>,
    required_tier: String,
    upgrade_needed: bool,
    tiers: Vec<TierCard>,
    refusal: Vec<String>,
    refusal_title: Option<String>,
}

fn meter(label: &'static str, used: u64, limit: Option<u32>) -> Meter {
    Meter {
        label,
        used,
        limit: limit.map_or_else(|| "unlimited".into(), |l| l.to_string()),
        percent: limit.map_or(0, |l| {
            if l == 0 {
                100
            } else {
                (used.saturating_mul(100) / u64::from(l)).min(100)
            }
        }),
        over: limit.is_some_and(|l| used > u64::from(l)),
    }
}

fn exceeded_sentence(e: &Exceeded) -> String {
    let what = match e.resource {
        LimitedResource::CloudAccounts => "cloud accounts",
        LimitedResource::TeamMembers => "team members (members plus pending invitations)",
        LimitedResource::HistoryDays => "days of history",
    };
    format!("{} {what} in use; that plan allows {}.", e.used, e.allowed)
}

fn render(
    report: &UsageReport,
    chrome: Chrome,
    slug: String,
    status: StatusCode,
    refusal_title: Option<String>,
    refusal: Vec<String>,
    now: chrono::DateTime<chrono::Utc>,
) -> Response {
    let terms = &report.subscription.terms;
    let accounts = report.usage.cloud_accounts;
    let price = match terms.price {
        Price::Monthly(0) => "Free".to_string(),
        Price::Monthly(c) => format!("{} a month", money(u64::from(c))),
        Price::PerAccount(c) => format!(
            "{} per account a month: {} for {accounts} accounts",
            money(u64::from(c)),
            money(u64::from(c) * accounts)
        ),
        Price::Custom => "Custom pricing".to_string(),
    };
    let meters = vec![
        meter("Cloud accounts", accounts, terms.limits.max_accounts),
        meter(
            "Team members",
            report.usage.team_members(),
            terms.limits.max_team_members,
        ),
    ];
    page(
        status,
        &BillingPage {
            chrome,
            slug,
            plan: terms.display_name,
            price,
            legacy: matches!(
                report.subscription.subscription.tier,
                SubscribedTier::Legacy(_)
            ),
            grace_until: terms
                .grace_until
                .map(|u| format!("{} ({})", format::when(u), format::ago(u, now))),
            meters,
            exceeded: report.exceeded.iter().map(exceeded_sentence).collect(),
            required_tier: report.required_tier.display_name().to_string(),
            upgrade_needed: report.upgrade_needed,
            tiers: cards(Some(report.subscription.subscription.tier)),
            refusal,
            refusal_title,
        },
    )
}

fn subscription_failure(e: SubscriptionError) -> Failure {
    match e {
        SubscriptionError::Forbidden(_) => Failure::Forbidden,
        SubscriptionError::NotFound => Failure::NotFound,
        SubscriptionError::Store(s) => Failure::Store(s),
        other => {
            tracing::error!(error = %other, "reading a subscription failed");
            Failure::NotFound
        }
    }
}

/// `GET /org/{slug}/billing`.
#[handler]
pub async fn show(
    state: Data<&ConsoleState>,
    req: &Request,
    Path(slug): Path<String>,
) -> Result<Response, Failure> {
    let (_, access, chrome) = chrome::organization(&state, req, &slug, "billing").await?;
    let report = state
        .billing
        .usage(&access)
        .await
        .map_err(subscription_failure)?;
    Ok(render(
        &report,
        chrome,
        access.organization().slug.as_str().to_string(),
        StatusCode::OK,
        None,
        Vec::new(),
        state.tenancy.clock().now(),
    ))
}

/// The tier chosen.
#[derive(Debug, Deserialize)]
pub struct Change {
    csrf: String,
    tier: String,
}

/// `POST /org/{slug}/billing` (owner): moves to the chosen tier; a downgrade the usage does
/// not fit is refused with every limit it would break.
#[handler]
pub async fn change_tier(
    state: Data<&ConsoleState>,
    req: &Request,
    Path(slug): Path<String>,
    Form(form): Form<Change>,
) -> Result<Response, Failure> {
    let (viewer, access, chrome) = chrome::organization(&state, req, &slug, "billing").await?;
    check_form(&viewer, req, &form.csrf)?;
    let (status, title, lines) = match state.billing.change_tier(&access, &form.tier).await {
        Ok(_) => return Ok(redirect(&format!("/org/{slug}/billing?done=tier"))),
        Err(SubscriptionError::DowngradeExceeds { tier, exceeded }) => (
            StatusCode::CONFLICT,
            format!(
                "Your usage does not fit the {} plan. Reduce it first:",
                tier.display_name()
            ),
            exceeded.iter().map(exceeded_sentence).collect(),
        ),
        Err(SubscriptionError::Invalid(v)) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            "That plan cannot be chosen here.".to_string(),
            v.errors.iter().map(|e| e.message.clone()).collect(),
        ),
        Err(SubscriptionError::ManagedByOperator) => (
            StatusCode::CONFLICT,
            "Enterprise subscriptions are managed by Canopy.".to_string(),
            vec!["Contact us to change it.".to_string()],
        ),
        Err(SubscriptionError::Changed) => (
            StatusCode::CONFLICT,
            "Someone changed the plan at the same time.".to_string(),
            vec!["Look at the plan below and choose again.".to_string()],
        ),
        Err(e) => return Err(subscription_failure(e)),
    };
    let report = state
        .billing
        .usage(&access)
        .await
        .map_err(subscription_failure)?;
    Ok(render(
        &report,
        chrome,
        access.organization().slug.as_str().to_string(),
        status,
        Some(title),
        lines,
        state.tenancy.clock().now(),
    ))
}

#[derive(Template)]
#[template(path = "billing/pricing.html")]
struct PricingPage {
    tiers: Vec<TierCard>,
    signed_in: bool,
}

/// `GET /pricing`: the four tiers, public.
#[handler]
pub async fn pricing(state: Data<&ConsoleState>, req: &Request) -> Response {
    // The pricing page needs no database: while it is away, it shows as to a stranger.
    let signed_in = matches!(session::viewer(&state.tenancy, req).await, Ok(Some(_)));
    page(
        StatusCode::OK,
        &PricingPage {
            tiers: cards(None),
            signed_in,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prices_read_like_prices() {
        assert_eq!(money(2_900), "$29");
        assert_eq!(money(25_000), "$250");
        assert_eq!(money(950), "$9.50");
    }

    #[test]
    fn meters_fill_to_the_limit_and_flag_overuse() {
        let m = meter("x", 3, Some(6));
        assert_eq!((m.percent, m.over), (50, false));
        let m = meter("x", 8, Some(6));
        assert_eq!((m.percent, m.over), (100, true));
        let m = meter("x", 8, None);
        assert_eq!(
            (m.percent, m.over, m.limit.as_str()),
            (0, false, "unlimited")
        );
    }

    #[test]
    fn the_pricing_table_is_the_tier_table() {
        let cards = cards(Some(SubscribedTier::Current(Tier::Pro)));
        assert_eq!(cards.len(), 4);
        assert!(cards.iter().any(|c| c.current && c.tier == "pro"));
        assert!(
            !cards
                .iter()
                .any(|c| c.tier == "enterprise" && c.self_service)
        );
        assert_eq!(tier_name("individual"), "Individual");
    }
}
