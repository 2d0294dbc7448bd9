//! Contract tests of the durable jobs port: one body per behaviour, on SQLite by plain
//! `cargo test` and on a fresh PostgreSQL database by `.ci/run`. The claim races run real
//! concurrent transactions.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashSet;
use std::sync::Arc;

use canopy_jobs::{
    Enqueued, Job, JobFilter, JobKind, JobStatus, JobStore, LeaseState, NewJob, Outcome, Progress,
    WorkerId,
};
use canopy_kernel::PageRequest;
use canopy_kernel::id::OrganizationId;
use canopy_store::testing::{self, audit, now, user_with_organization};
use canopy_store::{Store, contract};
use canopy_tenancy::AuditAction;
use canopy_tenancy::ports::AuditLog;
use chrono::Duration;
use serde_json::json;
use uuid::Uuid;

fn kind() -> JobKind {
    JobKind::from_static("test.work")
}

fn worker(n: u32) -> WorkerId {
    WorkerId(format!("test-worker-{n}"))
}

async fn org(store: &Store) -> OrganizationId {
    user_with_organization(store, "jobs").await.unwrap().1.id
}

async fn enqueue(store: &Store, org: OrganizationId) -> Job {
    store
        .jobs()
        .enqueue(
            NewJob::new(org, kind(), Some(Uuid::now_v7()), json!({"n": 1})),
            now(),
        )
        .await
        .unwrap()
        .queued()
        .expect("a new subject has no job yet")
}

async fn a_job_is_claimed_once_and_its_lease_is_renewed_and_finished(store: Store) {
    let org = org(&store).await;
    let queued = enqueue(&store, org).await;
    let jobs = store.jobs();
    let t = now();
    let claimed = jobs
        .claim(&worker(1), t, Duration::seconds(30))
        .await
        .unwrap()
        .expect("the queued job is claimable");
    assert_eq!(claimed.id, queued.id);
    assert_eq!(claimed.status, JobStatus::Running);
    assert_eq!(claimed.attempts, 1);
    assert_eq!(claimed.lease_owner, Some(worker(1)));
    assert_eq!(claimed.payload, json!({"n": 1}));
    // Held: nobody else gets it.
    assert!(
        jobs.claim(&worker(2), t, Duration::seconds(30))
            .await
            .unwrap()
            .is_none()
    );
    let held = jobs
        .report(
            claimed.id,
            &worker(1),
            Progress::phase("accounts", 3, Some(10)),
            t,
        )
        .await
        .unwrap();
    assert_eq!(
        held,
        LeaseState::Held {
            cancel_requested: false
        }
    );
    // Another worker's renew or finish touches nothing.
    assert_eq!(
        jobs.renew(claimed.id, &worker(2), t, t + Duration::seconds(60))
            .await
            .unwrap(),
        LeaseState::Lost
    );
    assert!(
        !jobs
            .finish(claimed.id, &worker(2), Outcome::Succeeded(json!({})), t)
            .await
            .unwrap()
    );
    assert!(
        jobs.finish(
            claimed.id,
            &worker(1),
            Outcome::Succeeded(json!({"found": 3})),
            t
        )
        .await
        .unwrap()
    );
    let done = jobs.get(org, claimed.id).await.unwrap().unwrap();
    assert_eq!(done.status, JobStatus::Succeeded);
    assert_eq!(done.result, Some(json!({"found": 3})));
    assert_eq!(done.progress.phase, "accounts");
    assert_eq!(done.progress.done, 3);
    assert!(done.lease_owner.is_none());
    assert!(done.finished_at.is_some());
}

async fn a_lapsed_lease_is_claimed_again_and_the_old_worker_is_shut_out(store: Store) {
    let org = org(&store).await;
    enqueue(&store, org).await;
    let jobs = store.jobs();
    let t = now();
    let first = jobs
        .claim(&worker(1), t, Duration::seconds(10))
        .await
        .unwrap()
        .unwrap();
    // The first worker dies: nothing renews. After the lease, another worker claims it.
    assert!(
        jobs.claim(&worker(2), t + Duration::seconds(5), Duration::seconds(10))
            .await
            .unwrap()
            .is_none()
    );
    let second = jobs
        .claim(&worker(2), t + Duration::seconds(11), Duration::seconds(10))
        .await
        .unwrap()
        .expect("a lapsed lease is claimable");
    assert_eq!(second.id, first.id);
    assert_eq!(second.attempts, 2);
    assert_eq!(second.lease_owner, Some(worker(2)));
    assert_eq!(second.started_at, first.started_at);
    // The first worker comes back: it holds nothing.
    assert_eq!(
        jobs.report(first.id, &worker(1), Progress::phase("x", 1, None), t)
            .await
            .unwrap(),
        LeaseState::Lost
    );
    assert!(
        !jobs
            .finish(first.id, &worker(1), Outcome::Failed("late".into()), t)
            .await
            .unwrap()
    );
    assert_eq!(
        jobs.get(org, first.id).await.unwrap().unwrap().status,
        JobStatus::Running
    );
}

async fn a_job_whose_workers_keep_dying_is_failed_not_handed_out_again(store: Store) {
    let org = org(&store).await;
    let job = enqueue(&store, org).await;
    let jobs = store.jobs();
    let mut t = now();
    for n in 0..NewJob::DEFAULT_MAX_ATTEMPTS {
        assert!(
            jobs.claim(&worker(n), t, Duration::seconds(1))
                .await
                .unwrap()
                .is_some()
        );
        t += Duration::seconds(2);
    }
    assert!(
        jobs.claim(&worker(99), t, Duration::seconds(1))
            .await
            .unwrap()
            .is_none()
    );
    let failed = jobs.get(org, job.id).await.unwrap().unwrap();
    assert_eq!(failed.status, JobStatus::Failed);
    assert!(failed.error.unwrap().contains("stopped 3 times"));
}

async fn a_retry_waits_its_back_off_and_gives_up_after_the_last_attempt(store: Store) {
    let org = org(&store).await;
    let job = enqueue(&store, org).await;
    let jobs = store.jobs();
    let t = now();
    let mut at = t;
    for attempt in 1..=NewJob::DEFAULT_MAX_ATTEMPTS {
        let claimed = jobs
            .claim(&worker(1), at, Duration::seconds(30))
            .await
            .unwrap()
            .expect("due again");
        assert_eq!(claimed.attempts, attempt);
        let retry_at = at + Duration::seconds(60);
        jobs.finish(
            job.id,
            &worker(1),
            Outcome::Retry {
                error: "throttled out".into(),
                at: retry_at,
            },
            at,
        )
        .await
        .unwrap();
        // Not before its time.
        assert!(
            jobs.claim(
                &worker(1),
                retry_at - Duration::seconds(1),
                Duration::seconds(30)
            )
            .await
            .unwrap()
            .is_none()
        );
        at = retry_at;
    }
    let failed = jobs.get(org, job.id).await.unwrap().unwrap();
    assert_eq!(failed.status, JobStatus::Failed);
    assert!(failed.error.unwrap().contains("gave up after 3 attempts"));
}

async fn concurrent_workers_never_share_a_job(store: Store) {
    let org = org(&store).await;
    let mut queued = HashSet::new();
    for _ in 0..20 {
        queued.insert(enqueue(&store, org).await.id);
    }
    let jobs = Arc::new(store.jobs());
    let t = now();
    let mut handles = Vec::new();
    for w in 0..8 {
        let jobs = jobs.clone();
        handles.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            while let Some(job) = jobs
                .claim(&worker(w), t, Duration::seconds(60))
                .await
                .unwrap()
            {
                mine.push(job.id);
            }
            mine
        }));
    }
    let mut claimed = Vec::new();
    for h in handles {
        claimed.extend(h.await.unwrap());
    }
    let distinct: HashSet<_> = claimed.iter().copied().collect();
    assert_eq!(claimed.len(), 20, "every job claimed exactly once");
    assert_eq!(distinct, queued);
}

async fn claims_are_fair_across_organizations(store: Store) {
    let big = org(&store).await;
    let small = org(&store).await;
    for _ in 0..5 {
        enqueue(&store, big).await;
    }
    let late = enqueue(&store, small).await;
    let jobs = store.jobs();
    let t = now() + Duration::seconds(1);
    let first = jobs
        .claim(&worker(1), t, Duration::seconds(60))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first.organization_id, big, "oldest first when nobody runs");
    // The big tenant has one running; the small tenant's job, queued last, goes next.
    let second = jobs
        .claim(&worker(2), t, Duration::seconds(60))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(second.id, late.id);
}

async fn cancelling_stops_a_queued_job_and_asks_a_running_one(store: Store) {
    let org = org(&store).await;
    let other = org_other(&store).await;
    let queued = enqueue(&store, org).await;
    let jobs = store.jobs();
    let t = now();
    // Another organization cannot see or cancel it.
    assert!(jobs.get(other, queued.id).await.unwrap().is_none());
    assert!(
        jobs.cancel(other, queued.id, audit(other, AuditAction::JobCancelled), t)
            .await
            .unwrap()
            .is_none()
    );
    let cancelled = jobs
        .cancel(org, queued.id, audit(org, AuditAction::JobCancelled), t)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(cancelled.status, JobStatus::Cancelled);
    assert!(
        jobs.claim(&worker(1), t, Duration::seconds(30))
            .await
            .unwrap()
            .is_none(),
        "a cancelled job is never claimed"
    );

    let running = enqueue(&store, org).await;
    let t = now();
    jobs.claim(&worker(1), t, Duration::seconds(30))
        .await
        .unwrap()
        .unwrap();
    let asked = jobs
        .cancel(org, running.id, audit(org, AuditAction::JobCancelled), t)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(asked.status, JobStatus::Running);
    assert!(asked.cancel_requested);
    assert_eq!(
        jobs.renew(running.id, &worker(1), t, t + Duration::seconds(30))
            .await
            .unwrap(),
        LeaseState::Held {
            cancel_requested: true
        }
    );
    assert!(
        jobs.finish(running.id, &worker(1), Outcome::Cancelled, t)
            .await
            .unwrap()
    );
    let events = store
        .audit_log()
        .list(org, None, Default::default(), PageRequest::first())
        .await
        .unwrap();
    let cancels = events
        .items
        .iter()
        .filter(|e| e.action == AuditAction::JobCancelled)
        .count();
    assert_eq!(
        cancels, 2,
        "one audit event per cancel that changed something"
    );
}

async fn org_other(store: &Store) -> OrganizationId {
    user_with_organization(store, "other").await.unwrap().1.id
}

async fn listing_filters_by_kind_status_and_subject_newest_first(store: Store) {
    let org = org(&store).await;
    let a = enqueue(&store, org).await;
    let b = enqueue(&store, org).await;
    let other_kind = store
        .jobs()
        .enqueue(
            NewJob::new(org, JobKind::from_static("test.other"), None, json!({})),
            now(),
        )
        .await
        .unwrap()
        .job()
        .clone();
    let jobs = store.jobs();
    let all = jobs
        .list(org, &JobFilter::default(), PageRequest::first())
        .await
        .unwrap();
    assert_eq!(
        all.items.iter().map(|j| j.id).collect::<Vec<_>>(),
        vec![other_kind.id, b.id, a.id]
    );
    let of_kind = jobs
        .list(
            org,
            &JobFilter {
                kind: Some(kind()),
                ..Default::default()
            },
            PageRequest::first(),
        )
        .await
        .unwrap();
    assert_eq!(of_kind.items.len(), 2);
    let on_subject = jobs
        .list(
            org,
            &JobFilter {
                subject: a.subject,
                ..Default::default()
            },
            PageRequest::first(),
        )
        .await
        .unwrap();
    assert_eq!(on_subject.items.len(), 1);
    assert_eq!(on_subject.items[0].id, a.id);
    let running = jobs
        .list(
            org,
            &JobFilter {
                statuses: vec![JobStatus::Running],
                ..Default::default()
            },
            PageRequest::first(),
        )
        .await
        .unwrap();
    assert!(running.items.is_empty());
    let first_page = jobs
        .list(
            org,
            &JobFilter::default(),
            PageRequest {
                limit: 2,
                after: None,
            },
        )
        .await
        .unwrap();
    let rest = jobs
        .list(
            org,
            &JobFilter::default(),
            PageRequest {
                limit: 2,
                after: first_page.next,
            },
        )
        .await
        .unwrap();
    assert_eq!(rest.items.len(), 1);
    assert_eq!(rest.items[0].id, a.id);
}

async fn one_job_of_a_kind_is_active_per_subject_even_when_sixteen_ask_at_once(store: Store) {
    let org = org(&store).await;
    let subject = Uuid::now_v7();
    let jobs = Arc::new(store.jobs());
    let asks = (0..16).map(|_| {
        let jobs = jobs.clone();
        tokio::spawn(async move {
            jobs.enqueue(
                NewJob::new(org, kind(), Some(subject), json!({}))
                    .audited(audit(org, AuditAction::CloudOrganizationScanRequested)),
                now(),
            )
            .await
            .unwrap()
        })
    });
    let mut queued = Vec::new();
    let mut refused = Vec::new();
    for ask in asks {
        match ask.await.unwrap() {
            Enqueued::Queued(job) => queued.push(job.id),
            Enqueued::AlreadyActive(job) => refused.push(job.id),
        }
    }
    assert_eq!(queued.len(), 1, "exactly one queued");
    assert_eq!(refused.len(), 15);
    assert!(
        refused.iter().all(|id| *id == queued[0]),
        "every refusal names the job in the place"
    );
    let listed = jobs
        .list(
            org,
            &JobFilter {
                subject: Some(subject),
                ..Default::default()
            },
            PageRequest::first(),
        )
        .await
        .unwrap();
    assert_eq!(listed.items.len(), 1, "nothing else stored");
    let events = store
        .audit_log()
        .list(org, None, Default::default(), PageRequest::first())
        .await
        .unwrap();
    let audited = events
        .items
        .iter()
        .filter(|e| e.action == AuditAction::CloudOrganizationScanRequested)
        .count();
    assert_eq!(audited, 1, "a refused request audits nothing");

    // Running still holds the place; another kind or subject is free.
    let t = now();
    let claimed = jobs
        .claim(&worker(1), t, Duration::seconds(30))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(claimed.id, queued[0]);
    let again = jobs
        .enqueue(NewJob::new(org, kind(), Some(subject), json!({})), t)
        .await
        .unwrap();
    assert_eq!(again, Enqueued::AlreadyActive(again.job().clone()));
    assert_eq!(again.job().id, queued[0]);
    assert!(matches!(
        jobs.enqueue(
            NewJob::new(
                org,
                JobKind::from_static("test.other"),
                Some(subject),
                json!({})
            ),
            t
        )
        .await
        .unwrap(),
        Enqueued::Queued(_)
    ));
    // Ended, the place is free again.
    jobs.finish(claimed.id, &worker(1), Outcome::Succeeded(json!({})), t)
        .await
        .unwrap();
    assert!(matches!(
        jobs.enqueue(NewJob::new(org, kind(), Some(subject), json!({})), t)
            .await
            .unwrap(),
        Enqueued::Queued(_)
    ));
}

async fn every_failed_or_cancelled_job_is_wrapped_up_once_by_one_worker(store: Store) {
    let org = org(&store).await;
    let jobs = store.jobs();
    // Later than every job's queuing below, so each is due when claimed.
    let t = now() + Duration::seconds(60);
    let lease = Duration::seconds(30);

    // Failed by its handler, cancelled while queued, given up by the claim: each one waits to
    // be wrapped up; a succeeded one does not.
    let failed = enqueue(&store, org).await;
    jobs.claim(&worker(1), t, lease).await.unwrap().unwrap();
    jobs.finish(failed.id, &worker(1), Outcome::Failed("refused".into()), t)
        .await
        .unwrap();
    let succeeded = enqueue(&store, org).await;
    jobs.claim(&worker(1), t, lease).await.unwrap().unwrap();
    jobs.finish(succeeded.id, &worker(1), Outcome::Succeeded(json!({})), t)
        .await
        .unwrap();
    let cancelled = enqueue(&store, org).await;
    jobs.cancel(org, cancelled.id, audit(org, AuditAction::JobCancelled), t)
        .await
        .unwrap();
    let abandoned = enqueue(&store, org).await;
    let mut at = t;
    for n in 0..NewJob::DEFAULT_MAX_ATTEMPTS {
        jobs.claim(&worker(10 + n), at, Duration::seconds(1))
            .await
            .unwrap()
            .unwrap();
        at += Duration::seconds(2);
    }
    assert!(jobs.claim(&worker(20), at, lease).await.unwrap().is_none());

    let mut wrapped = HashSet::new();
    while let Some(job) = jobs.claim_wrap_up(&worker(2), at, lease).await.unwrap() {
        assert!(job.status == JobStatus::Failed || job.status == JobStatus::Cancelled);
        // Held: another worker gets a different one or none.
        if let Some(other) = jobs.claim_wrap_up(&worker(3), at, lease).await.unwrap() {
            assert_ne!(other.id, job.id);
            assert!(!jobs.wrapped_up(job.id, &worker(3)).await.unwrap());
            assert!(jobs.wrapped_up(other.id, &worker(3)).await.unwrap());
            wrapped.insert(other.id);
        }
        assert!(jobs.wrapped_up(job.id, &worker(2)).await.unwrap());
        wrapped.insert(job.id);
    }
    assert_eq!(
        wrapped,
        HashSet::from([failed.id, cancelled.id, abandoned.id]),
        "each failed or cancelled job once, the succeeded one never"
    );
    assert!(
        jobs.claim_wrap_up(&worker(2), at + Duration::hours(1), lease)
            .await
            .unwrap()
            .is_none(),
        "a wrapped-up job is not handed out again"
    );

    // A worker that dies in a wrap-up: handed to another once the lease lapses.
    let dying = enqueue(&store, org).await;
    jobs.claim(&worker(4), at, lease).await.unwrap().unwrap();
    jobs.finish(dying.id, &worker(4), Outcome::Cancelled, at)
        .await
        .unwrap();
    let first = jobs
        .claim_wrap_up(&worker(4), at, Duration::seconds(5))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first.id, dying.id);
    assert!(
        jobs.claim_wrap_up(&worker(5), at + Duration::seconds(4), lease)
            .await
            .unwrap()
            .is_none()
    );
    let second = jobs
        .claim_wrap_up(&worker(5), at + Duration::seconds(6), lease)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(second.id, dying.id);
    assert!(!jobs.wrapped_up(dying.id, &worker(4)).await.unwrap());
    assert!(jobs.wrapped_up(dying.id, &worker(5)).await.unwrap());
    let done = jobs.get(org, dying.id).await.unwrap().unwrap();
    assert_eq!(done.status, JobStatus::Cancelled);
    assert!(done.lease_owner.is_none());
}

async fn jobs_duplicated_before_the_guarantee_are_resolved_when_it_is_added(store: Store) {
    let org = org(&store).await;
    let subject = Uuid::now_v7();
    testing::undo_migrations_from(&store, "m20261207_000012_one_active_job")
        .await
        .unwrap();
    // Three active jobs of one kind on one subject, as concurrent requests could leave them.
    let mut ids = Vec::new();
    for status in [JobStatus::Running, JobStatus::Queued, JobStatus::Queued] {
        let mut job = NewJob::new(org, kind(), Some(subject), json!({})).into_job(now());
        job.status = status;
        if status == JobStatus::Running {
            job.lease_owner = Some(worker(1));
            job.lease_expires_at = Some(now() + Duration::seconds(30));
        }
        testing::insert_job_as_created(&store, &job).await.unwrap();
        ids.push(job.id);
    }
    store.migrate().await.unwrap();
    let jobs = store.jobs();
    let oldest = jobs.get(org, ids[0]).await.unwrap().unwrap();
    assert_eq!(
        oldest.status,
        JobStatus::Running,
        "the oldest keeps its place"
    );
    for id in &ids[1..] {
        let later = jobs.get(org, *id).await.unwrap().unwrap();
        assert_eq!(later.status, JobStatus::Cancelled);
        assert!(later.error.unwrap().contains("already queued or running"));
    }
    let mut wrapped = HashSet::new();
    while let Some(job) = jobs
        .claim_wrap_up(&worker(1), now(), Duration::seconds(30))
        .await
        .unwrap()
    {
        wrapped.insert(job.id);
        jobs.wrapped_up(job.id, &worker(1)).await.unwrap();
    }
    assert_eq!(wrapped, HashSet::from([ids[1], ids[2]]));
}

contract!(
    one_job_of_a_kind_is_active_per_subject_even_when_sixteen_ask_at_once,
    every_failed_or_cancelled_job_is_wrapped_up_once_by_one_worker,
    jobs_duplicated_before_the_guarantee_are_resolved_when_it_is_added,
    a_job_is_claimed_once_and_its_lease_is_renewed_and_finished,
    a_lapsed_lease_is_claimed_again_and_the_old_worker_is_shut_out,
    a_job_whose_workers_keep_dying_is_failed_not_handed_out_again,
    a_retry_waits_its_back_off_and_gives_up_after_the_last_attempt,
    concurrent_workers_never_share_a_job,
    claims_are_fair_across_organizations,
    cancelling_stops_a_queued_job_and_asks_a_running_one,
    listing_filters_by_kind_status_and_subject_newest_first,
);
