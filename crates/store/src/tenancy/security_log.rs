//! Each person's security log (`SecurityLog`): appended by the self-service flows, read by
//! its owner only.

use async_trait::async_trait;
use canopy_kernel::id::UserId;
use canopy_kernel::page::Page;
use canopy_kernel::{PageRequest, StoreError};
use canopy_tenancy::account::{ClientInfo, SecurityAction, SecurityEvent};
use canopy_tenancy::ports::SecurityLog;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set,
};

use crate::entity::security_events;
use crate::error::{corrupt, db_err};

crate::repository!(
    /// The security log of every account.
    SecurityLogStore,
    security_log
);

#[async_trait]
impl SecurityLog for SecurityLogStore {
    async fn record(&self, event: SecurityEvent) -> Result<(), StoreError> {
        security_events::ActiveModel {
            id: Set(event.id),
            user_id: Set(event.user_id.as_uuid()),
            action: Set(event.action.as_str().to_string()),
            ip: Set(event.client.ip),
            user_agent: Set(event.client.user_agent),
            details: Set(event.details),
            occurred_at: Set(event.occurred_at),
        }
        .insert(self.db())
        .await
        .map_err(db_err)?;
        Ok(())
    }

    async fn list(
        &self,
        user: UserId,
        page: PageRequest,
    ) -> Result<Page<SecurityEvent>, StoreError> {
        let mut query = security_events::Entity::find()
            .filter(security_events::Column::UserId.eq(user.as_uuid()))
            .order_by_desc(security_events::Column::Id)
            .limit(u64::from(page.limit) + 1);
        if let Some(after) = page.after {
            query = query.filter(security_events::Column::Id.lt(after.0));
        }
        let rows = query.all(self.db()).await.map_err(db_err)?;
        let page = Page::from_overfetch(rows, page.limit, |m| m.id);
        Ok(Page {
            items: page
                .items
                .into_iter()
                .map(|m| {
                    Ok(SecurityEvent {
                        id: m.id,
                        user_id: UserId(m.user_id),
                        action: SecurityAction::from_stored(&m.action)
                            .ok_or_else(|| corrupt("security action", &m.action))?,
                        client: ClientInfo {
                            user_agent: m.user_agent,
                            ip: m.ip,
                        },
                        details: m.details,
                        occurred_at: m.occurred_at,
                    })
                })
                .collect::<Result<_, StoreError>>()?,
            next: page.next,
        })
    }
}
