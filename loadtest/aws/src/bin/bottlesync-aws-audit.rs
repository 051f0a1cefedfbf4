//! Checks every AWS call bottlesync's processes make against the IAM role
//! each runs as (issue 18), for scripts/terraform-check.sh:
//!
//! - `proxy --upstream URL --calls FILE`: an audited AWS request counter in
//!   front of moto; prints `AWS_AUDIT_URL=...` once listening and appends
//!   one JSON line per call to FILE (signing key, API, status, the IAM
//!   actions and resources it needs). Runs until SIGINT/SIGTERM.
//! - `check --calls FILE... --principals FILE`: evaluates each recorded
//!   (action, resource) against the policy of the role whose session key
//!   signed it, as IAM does (Deny wins, resources and conditions included:
//!   the half moto does not check). Exits 1 naming process, action and
//!   resource for every call a role does not allow, for calls it could not
//!   map and for calls signed by a key that is not a process's.
//!
//! `--expect PROCESS=ACTION[@RESOURCE]` (wildcards allowed in RESOURCE)
//! fails the check when PROCESS never made an allowed call of ACTION (on
//! RESOURCE): the calls a role was once missing stay exercised.
//!
//! The principals file maps each session's access key to its process:
//! `{"ASIA...": {"process": "plan", "role": "bottlesync-local-planner",
//! "policies": [<policy document>, ...]}}`.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead as _, Write as _};
use std::path::PathBuf;

use anyhow::Context as _;
use bottlesync_aws_harness::aws_counter::AwsRequestCounter;
use bottlesync_aws_harness::iam_audit::AuditedCall;
use bottlesync_loadtest::iam_policy::{Decision, PolicyDocument, wildcard_match};
use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "bottlesync-aws-audit", version)]
struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// An audited proxy in front of an AWS endpoint.
    Proxy {
        #[arg(long)]
        upstream: String,
        /// Where to append the calls (JSON lines).
        #[arg(long)]
        calls: PathBuf,
        /// The account the resources are in (moto's default).
        #[arg(long, default_value = "123456789012")]
        account: String,
    },
    /// Evaluates recorded calls against their roles' policies.
    Check {
        #[arg(long, required = true)]
        calls: Vec<PathBuf>,
        #[arg(long)]
        principals: PathBuf,
        /// PROCESS=ACTION[@RESOURCE]: a call the run must have made.
        #[arg(long, value_parser = parse_expectation)]
        expect: Vec<Expectation>,
    },
}

#[derive(Debug, Clone)]
struct Expectation {
    process: String,
    action: String,
    resource: String,
}

fn parse_expectation(text: &str) -> Result<Expectation, String> {
    let (process, call) = text
        .split_once('=')
        .ok_or_else(|| format!("{text:?} is not PROCESS=ACTION[@RESOURCE]"))?;
    let (action, resource) = call.split_once('@').unwrap_or((call, "*"));
    if process.is_empty() || !action.contains(':') {
        return Err(format!("{text:?} is not PROCESS=ACTION[@RESOURCE]"));
    }
    Ok(Expectation {
        process: process.to_string(),
        action: action.to_string(),
        resource: resource.to_string(),
    })
}

#[derive(Debug, serde::Deserialize)]
struct Principal {
    process: String,
    role: String,
    policies: Vec<serde_json::Value>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Args::parse().command {
        Command::Proxy {
            upstream,
            calls,
            account,
        } => proxy(&upstream, calls, &account).await,
        Command::Check {
            calls,
            principals,
            expect,
        } => {
            let failures = check(&calls, &principals, &expect)?;
            if failures > 0 {
                std::process::exit(1);
            }
            Ok(())
        }
    }
}

async fn proxy(upstream: &str, calls: PathBuf, account: &str) -> anyhow::Result<()> {
    let sink = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&calls)
        .with_context(|| format!("opening {}", calls.display()))?;
    let proxy = AwsRequestCounter::start_audited(upstream, account, Some(sink)).await?;
    let mut stdout = std::io::stdout();
    writeln!(stdout, "AWS_AUDIT_URL={}", proxy.url())?;
    stdout.flush()?;
    bottlesync_loadtest::wait_for_stop_signal().await?;
    Ok(())
}

/// What one process called.
struct ProcessCalls<'a> {
    role: &'a str,
    calls: usize,
    /// The (action, resource) pairs its role allowed.
    allowed: BTreeSet<(String, String)>,
}

/// Prints what each process called and every failure; returns how many.
fn check(
    call_files: &[PathBuf],
    principals: &PathBuf,
    expectations: &[Expectation],
) -> anyhow::Result<usize> {
    let text = std::fs::read_to_string(principals)
        .with_context(|| format!("reading {}", principals.display()))?;
    let principals: BTreeMap<String, Principal> = serde_json::from_str(&text)
        .with_context(|| format!("{}: not a principals file", principals.display()))?;
    let mut policies = BTreeMap::new();
    for (key, principal) in &principals {
        let mut policy = PolicyDocument::default();
        for document in &principal.policies {
            policy = policy.merge(
                PolicyDocument::parse(document)
                    .with_context(|| format!("a policy of role {}", principal.role))?,
            );
        }
        policies.insert(key.clone(), policy);
    }

    let mut failures = BTreeSet::new();
    let mut seen: BTreeMap<&str, ProcessCalls> = BTreeMap::new();
    for path in call_files {
        let file =
            std::fs::File::open(path).with_context(|| format!("reading {}", path.display()))?;
        for (n, line) in std::io::BufReader::new(file).lines().enumerate() {
            let line = line.with_context(|| format!("reading {}", path.display()))?;
            if line.trim().is_empty() {
                continue;
            }
            let call: AuditedCall = serde_json::from_str(&line)
                .with_context(|| format!("{}:{}: not an audited call", path.display(), n + 1))?;
            let Some((key, principal)) = call
                .access_key
                .as_deref()
                .and_then(|k| principals.get_key_value(k))
            else {
                failures.insert(format!(
                    "{} signed by {}, which is no process's role session",
                    call.api,
                    call.access_key.as_deref().unwrap_or("nobody")
                ));
                continue;
            };
            let entry = seen
                .entry(principal.process.as_str())
                .or_insert_with(|| ProcessCalls {
                    role: &principal.role,
                    calls: 0,
                    allowed: BTreeSet::new(),
                });
            entry.calls += 1;
            let needed = match &call.authorizations {
                Ok(needed) => needed,
                Err(problem) => {
                    failures.insert(format!("{}: {problem}", principal.process));
                    continue;
                }
            };
            for authorization in needed {
                match policies[key].evaluate(authorization) {
                    Decision::Allowed(_) => {
                        entry
                            .allowed
                            .insert((authorization.action.clone(), authorization.resource.clone()));
                    }
                    denied => {
                        failures.insert(format!(
                            "{}: role {} does not allow {} on {} ({}; moto answered {})",
                            principal.process,
                            principal.role,
                            authorization.action,
                            authorization.resource,
                            match denied {
                                Decision::ExplicitDeny(sid) => format!("denied by {sid}"),
                                Decision::Unevaluated(why) => why,
                                _ => "no statement allows it".into(),
                            },
                            call.status,
                        ));
                    }
                }
            }
        }
    }
    for (process, made) in &seen {
        let actions: BTreeSet<_> = made.allowed.iter().map(|(a, _)| a.as_str()).collect();
        println!(
            "   {process} (role {}): {} calls, these allowed: {}",
            made.role,
            made.calls,
            actions.into_iter().collect::<Vec<_>>().join(" ")
        );
    }
    for principal in principals.values() {
        if !seen.contains_key(principal.process.as_str()) {
            failures.insert(format!(
                "{}: made no AWS call through the audit (was it pointed at the proxy?)",
                principal.process
            ));
        }
    }
    for expected in expectations {
        let made = seen.get(expected.process.as_str()).is_some_and(|made| {
            made.allowed.iter().any(|(action, resource)| {
                action.eq_ignore_ascii_case(&expected.action)
                    && wildcard_match(&expected.resource, resource)
            })
        });
        if !made {
            failures.insert(format!(
                "{}: never called {} on {}, which this check must exercise",
                expected.process, expected.action, expected.resource
            ));
        }
    }
    for failure in &failures {
        println!("   DENIED {failure}");
    }
    Ok(failures.len())
}
