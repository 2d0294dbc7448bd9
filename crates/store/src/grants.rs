//! The receiving end of the `canopy_grants` notifications the grant and organization-data
//! triggers send (migrations 16 and 17): one dedicated PostgreSQL connection per process,
//! `LISTEN`ing, telling a [`GrantListener`] of each change and of whether the channel is up.

use std::sync::Arc;
use std::time::Duration;

use canopy_kernel::id::{OrganizationId, UserId};
use canopy_tenancy::{GrantChange, GrantListener};
use sea_orm::sqlx::postgres::PgListener;
use uuid::Uuid;

use crate::Store;

/// The channel the triggers notify.
const CHANNEL: &str = "canopy_grants";

/// Waits between attempts to get the channel back: short, since nothing is served from the
/// cache meanwhile.
const RECONNECT: Duration = Duration::from_millis(500);

/// What a notification's payload names; `Everything` for one we cannot read.
fn change_of(payload: &str) -> GrantChange {
    let parsed = payload
        .split_once(':')
        .and_then(|(kind, id)| Some((kind, Uuid::parse_str(id).ok()?)));
    match parsed {
        Some(("u", id)) => GrantChange::User(UserId(id)),
        Some(("o", id)) => GrantChange::Organization(OrganizationId(id)),
        Some(("d", id)) => GrantChange::Data(OrganizationId(id)),
        _ => GrantChange::Everything,
    }
}

impl Store {
    /// Tells `listener` of every grant change any process commits, for as long as the
    /// returned task runs. `None` on SQLite, where this process is the only writer.
    pub fn watch_grants(
        &self,
        listener: Arc<dyn GrantListener>,
    ) -> Option<tokio::task::JoinHandle<()>> {
        if !self.is_postgres() {
            return None;
        }
        let pool = self.db().get_postgres_connection_pool().clone();
        Some(tokio::spawn(async move {
            loop {
                match listen(&pool).await {
                    Ok(mut channel) => {
                        listener.listening(true);
                        tracing::debug!("grant notifications: listening");
                        // `None`: the connection was lost; what was sent meanwhile is gone.
                        while let Ok(Some(note)) = channel.try_recv().await {
                            listener.changed(change_of(note.payload()));
                        }
                        listener.listening(false);
                        tracing::warn!("grant notifications: channel lost, reconnecting");
                    }
                    Err(e) => {
                        tracing::debug!(error = %e, "grant notifications: cannot listen yet");
                    }
                }
                if pool.is_closed() {
                    return;
                }
                tokio::time::sleep(RECONNECT).await;
            }
        }))
    }
}

async fn listen(pool: &sea_orm::sqlx::PgPool) -> Result<PgListener, sea_orm::sqlx::Error> {
    let mut channel = PgListener::connect_with(pool).await?;
    channel.listen(CHANNEL).await?;
    Ok(channel)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_name_a_user_an_organization_or_everything() {
        let id = Uuid::new_v4();
        assert_eq!(change_of(&format!("u:{id}")), GrantChange::User(UserId(id)));
        assert_eq!(
            change_of(&format!("o:{id}")),
            GrantChange::Organization(OrganizationId(id))
        );
        assert_eq!(
            change_of(&format!("d:{id}")),
            GrantChange::Data(OrganizationId(id))
        );
        assert_eq!(change_of("u:not-an-id"), GrantChange::Everything);
        assert_eq!(change_of(&format!("x:{id}")), GrantChange::Everything);
    }
}
