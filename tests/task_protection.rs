//! ECS task scale-in protection (worker/src/protection.rs) against the ECS
//! agent stand-in, which answers as ECS does for the task role that
//! terraform/modules/iam writes: refused without `ecs:UpdateTaskProtection`,
//! renewed before it expires while bottles are in flight, dropped when idle.
//! Time is scaled down: a protection "minute" of the stand-in lasts a
//! fraction of a second, renewals keep the production ratio (half the expiry).

use std::time::Duration;

use bottlesync_loadtest::ecs_agent::{EcsAgent, TaskRolePolicy};
use bottlesync_worker::protection::{ProtectionTiming, TaskProtection};

const ACTION: &str = "ecs:UpdateTaskProtection";

/// Polls `done` every 20 ms for up to 30 s (an outcome, not a duration).
async fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    for _ in 0..1500 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("timed out waiting for {what}");
}

#[test]
fn the_terraform_task_role_names_the_protection_actions() {
    let policy = TaskRolePolicy::from_terraform_source().unwrap();
    // The reader followed the module's locals (shared data-plane statements,
    // the consumer action list), not only literal lists.
    for action in [
        "sqs:ReceiveMessage",
        "dynamodb:PutItem",
        "s3:PutObject",
        "ecs:GetTaskProtection",
        ACTION,
    ] {
        assert!(
            policy.allows(action),
            "{action} not in {:?}",
            policy.actions().collect::<Vec<_>>()
        );
    }
    assert!(
        !policy.allows("ecs:UpdateService"),
        "only the planner wakes the service"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protection_is_refused_without_the_action_and_granted_with_the_terraform_role() {
    let terraform = TaskRolePolicy::from_terraform_source().unwrap();

    let agent = EcsAgent::start(terraform.clone().without(ACTION), Duration::from_secs(60))
        .await
        .unwrap();
    let protection = TaskProtection::new(Some(ecs_agent(&agent)));
    protection.set(true).await;
    assert!(
        !agent.is_protected(),
        "a role without {ACTION} gets no protection"
    );
    assert_eq!(
        agent.requests()[0].outcome,
        Err("AccessDeniedException".to_string())
    );
    protection.set(false).await;

    let agent = EcsAgent::start(terraform, Duration::from_secs(60))
        .await
        .unwrap();
    let protection = TaskProtection::new(Some(ecs_agent(&agent)));
    protection.set(true).await;
    assert!(agent.is_protected(), "{:?}", agent.requests());
    let first = &agent.requests()[0];
    assert_eq!(
        (first.enabled, first.expires_in_minutes, &first.outcome),
        (Some(true), Some(60), &Ok(()))
    );
    protection.set(false).await;
    assert!(!agent.is_protected(), "dropped when idle");
    assert!(agent.requests().iter().all(|r| r.outcome.is_ok()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protection_is_renewed_before_it_expires_and_dropped_when_idle() {
    // One protection minute = 3 s; renewed at half of it, as in production
    // (60 minutes, renewed every 30): a lapse would need a renewal 1.5 s late.
    let minute = Duration::from_secs(3);
    let agent = EcsAgent::start(TaskRolePolicy::from_terraform_source().unwrap(), minute)
        .await
        .unwrap();
    let timing = ProtectionTiming {
        expires_in_minutes: 1,
        renew_every: minute / 2,
        retry_after_failure: minute / 8,
    };
    let protection = TaskProtection::with_timing(Some(ecs_agent(&agent)), timing);
    protection.set(true).await;
    // Three renewals: the protection has outlived its first expiry by half.
    wait_for("three renewals", || {
        agent
            .requests()
            .iter()
            .filter(|r| r.enabled == Some(true))
            .count()
            >= 4
    })
    .await;
    assert!(agent.is_protected());
    assert_eq!(
        agent.lapses(),
        0,
        "renewed before each expiry: {:?}",
        agent.requests()
    );
    assert!(
        agent
            .requests()
            .iter()
            .all(|r| r.expires_in_minutes == Some(1) && r.outcome.is_ok())
    );

    protection.set(false).await;
    assert!(!agent.is_protected(), "dropped when the worker goes idle");
    let after_drop = agent.requests().len();
    assert_eq!(agent.requests().last().unwrap().enabled, Some(false));
    // No renewal after the drop: past a renewal interval, nothing more came.
    tokio::time::sleep(timing.renew_every * 2).await;
    assert_eq!(agent.requests().len(), after_drop, "{:?}", agent.requests());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_renewal_is_retried_before_the_protection_lapses() {
    // The agent refuses every request until the role gets the action (an
    // IAM change propagating, or ECS throttling): the worker keeps asking at
    // the failure interval and is protected as soon as it is allowed.
    let minute = Duration::from_secs(2);
    let terraform = TaskRolePolicy::from_terraform_source().unwrap();
    let agent = EcsAgent::start(terraform.clone().without(ACTION), minute)
        .await
        .unwrap();
    let timing = ProtectionTiming {
        expires_in_minutes: 1,
        renew_every: minute / 2,
        retry_after_failure: minute / 8,
    };
    let protection = TaskProtection::with_timing(Some(ecs_agent(&agent)), timing);
    protection.set(true).await;
    wait_for("two refused retries", || agent.requests().len() >= 3).await;
    assert!(!agent.is_protected());
    agent.set_policy(terraform);
    wait_for("protection once allowed", || agent.is_protected()).await;
    protection.set(false).await;
    assert!(!agent.is_protected());
}

/// The real HTTP client of the ECS agent, pointed at the stand-in.
fn ecs_agent(
    agent: &EcsAgent,
) -> std::sync::Arc<dyn bottlesync_core::ports::protection::ProtectionAgent> {
    std::sync::Arc::new(bottlesync_adapters::http::ecs_agent::EcsAgent::new(
        &agent.uri(),
    ))
}
