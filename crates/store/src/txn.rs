//! Writing under the organization lock. Every change that counts something against a plan,
//! keeps an owner, or writes an audit event runs through [`Store::write_locked`] (or
//! [`Store::write_new_organization`] for the transaction that creates the organization), which
//! locks the organization rows before the closure runs. Audit events can only be written
//! through the [`Locked`] handle those helpers pass in, so a new writing path cannot forget
//! the lock.
//!
//! Why first: on PostgreSQL every audit insert share-locks its organization row through the
//! foreign key, so a transaction that took another row lock first and the organization lock
//! second could deadlock with one that did the opposite. SQLite runs one transaction at a time
//! on its single pooled connection, so there the lock is the transaction itself.

use std::future::Future;
use std::pin::Pin;

use canopy_kernel::StoreError;
use canopy_kernel::id::OrganizationId;
use sea_orm::{DatabaseTransaction, DbErr, EntityTrait, QuerySelect, TransactionTrait};

use crate::Store;
use crate::entity::organizations;
use crate::error::db_err;

/// The future a locked write returns.
pub(crate) type LockedWork<'c, T, E> =
    Pin<Box<dyn Future<Output = Result<T, Abort<E>>> + Send + 'c>>;

/// Why a locked write stopped: the domain refused (an outcome of the operation, e.g. the last
/// owner), or the database failed. Either way the transaction is rolled back.
#[derive(Debug)]
pub(crate) enum Abort<E> {
    /// A refusal to hand to the caller as is.
    Refuse(E),
    /// A database failure.
    Db(DbErr),
}

impl<E> From<DbErr> for Abort<E> {
    fn from(e: DbErr) -> Self {
        Abort::Db(e)
    }
}

/// A transaction holding the row locks of some organizations; only the helpers below make
/// one. Derefs to the transaction for queries.
#[derive(Clone, Copy)]
pub(crate) struct Locked<'c> {
    txn: &'c DatabaseTransaction,
    orgs: &'c [OrganizationId],
}

impl<'c> Locked<'c> {
    /// The transaction.
    pub(crate) fn txn(&self) -> &'c DatabaseTransaction {
        self.txn
    }

    /// True when `org`'s row is locked by this transaction.
    pub(crate) fn holds(&self, org: OrganizationId) -> bool {
        self.orgs.contains(&org)
    }
}

impl std::ops::Deref for Locked<'_> {
    type Target = DatabaseTransaction;

    fn deref(&self) -> &DatabaseTransaction {
        self.txn
    }
}

async fn finish<T, E: From<StoreError>>(
    txn: DatabaseTransaction,
    outcome: Result<T, Abort<E>>,
) -> Result<T, E> {
    match outcome {
        Ok(value) => {
            txn.commit().await.map_err(|e| E::from(db_err(e)))?;
            Ok(value)
        }
        Err(abort) => {
            // The refusal or failure is what the caller needs; a rollback that fails too (the
            // connection is gone) changes nothing stored.
            if let Err(e) = txn.rollback().await {
                tracing::debug!(error = %e, "rollback after an aborted write failed");
            }
            match abort {
                Abort::Refuse(e) => Err(e),
                Abort::Db(e) => Err(E::from(db_err(e))),
            }
        }
    }
}

impl Store {
    /// Locks one organization row (`SELECT … FOR UPDATE` on PostgreSQL); `false` when it
    /// does not exist.
    async fn lock_row(
        &self,
        txn: &DatabaseTransaction,
        org: OrganizationId,
    ) -> Result<bool, DbErr> {
        let mut query = organizations::Entity::find_by_id(org.as_uuid());
        if self.is_postgres() {
            query = query.lock_exclusive();
        }
        Ok(query.one(txn).await?.is_some())
    }

    /// Runs `work` in one transaction after locking the rows of `orgs` (in id order, so two
    /// writers locking several organizations cannot deadlock). Commits when `work` succeeds,
    /// rolls back otherwise. `Ok(None)` when one of the organizations does not exist (nothing
    /// ran).
    pub(crate) async fn write_locked<T, E, F>(
        &self,
        orgs: &[OrganizationId],
        work: F,
    ) -> Result<Option<T>, E>
    where
        T: Send,
        E: From<StoreError> + Send,
        F: for<'c> FnOnce(Locked<'c>) -> LockedWork<'c, T, E> + Send,
    {
        let mut sorted = orgs.to_vec();
        sorted.sort();
        sorted.dedup();
        let txn = self.db().begin().await.map_err(|e| E::from(db_err(e)))?;
        for org in &sorted {
            match self.lock_row(&txn, *org).await {
                Ok(true) => {}
                Ok(false) => {
                    finish::<(), E>(txn, Ok(())).await?;
                    return Ok(None);
                }
                Err(e) => return finish(txn, Err(Abort::Db(e))).await,
            }
        }
        let outcome = work(Locked {
            txn: &txn,
            orgs: &sorted,
        })
        .await;
        finish(txn, outcome).await.map(Some)
    }

    /// Runs `work` in the transaction that creates an organization: its row is inserted
    /// first (which locks it, being new), then `work` writes the rest under that lock.
    /// `conflict` turns a failed insert (a taken slug) into the caller's refusal.
    pub(crate) async fn write_new_organization<T, E, F>(
        &self,
        row: organizations::ActiveModel,
        org: OrganizationId,
        conflict: impl FnOnce(&DbErr) -> Option<E> + Send,
        work: F,
    ) -> Result<T, E>
    where
        T: Send,
        E: From<StoreError> + Send,
        F: for<'c> FnOnce(Locked<'c>) -> LockedWork<'c, T, E> + Send,
    {
        use sea_orm::ActiveModelTrait;
        let txn = self.db().begin().await.map_err(|e| E::from(db_err(e)))?;
        if let Err(e) = row.insert(&txn).await {
            let abort = match conflict(&e) {
                Some(refusal) => Abort::Refuse(refusal),
                None => Abort::Db(e),
            };
            return finish(txn, Err(abort)).await;
        }
        let orgs = [org];
        let outcome = work(Locked {
            txn: &txn,
            orgs: &orgs,
        })
        .await;
        finish(txn, outcome).await
    }
}
