//! A whole fleet stack on moto_server for end-to-end tests: bucket, ledger
//! table, the Lambda and ECS queues with a DLQ, the Homebrew stand-in and a
//! Slack webhook receiver; plus the settings Terraform would give the
//! functions, and readers for what ended up where.
//!
//! [`Stack::start_with`] with [`StackOptions::prod_like`] gives production's
//! timing ratios scaled down in time, and `.lossy(plan)` puts a lossy proxy
//! (`bottlesync_aws_harness::aws_faults`) between the fleet's processes and
//! moto's DynamoDB and SQS.

use std::collections::{BTreeMap, BTreeSet};
use std::process::{Child, Stdio};

use bottlesync_adapters::aws::sqs_queue::SqsQueue;
use bottlesync_adapters::wiring::FleetAdapters;
use bottlesync_aws_harness::aws_counter::AwsRequestCounter;
use bottlesync_aws_harness::aws_faults::{FaultPlan, FaultTally};
use bottlesync_aws_harness::moto::{FleetQueues, ProdLikeTimes};
use bottlesync_core::ports::queue::Queue;
use bottlesync_load::end_state::hash_file_keys;
use bottlesync_load::moto_backend::moto_fleet_adapters;
use bottlesync_loadtest::webhook::WebhookReceiver;
use bottlesync_loadtest::{Catalog, StandIn, StandInConfig};

use super::*;

pub const BUCKET: &str = "fleet-mirror";
pub const TABLE: &str = "bottlesync-ledger";
pub const PREFIX: &str = "brew";
/// As Terraform's default; workers give a bottle `attempts_allowed(5)` = 3.
pub const MAX_RECEIVES: u32 = 5;

/// How a stack is set up: its queues' attributes, the fleet's timing
/// settings, and whether a lossy proxy stands in front of DynamoDB and SQS.
#[derive(Clone, Debug)]
pub struct StackOptions {
    /// The work queues' VisibilityTimeout.
    pub visibility_timeout_secs: u32,
    /// The work queues' redrive maxReceiveCount.
    pub max_receive_count: u32,
    /// `BOTTLESYNC_CLAIM_LEASE_SECONDS` of the processes (`None`: unset, 900).
    pub claim_lease_secs: Option<u32>,
    /// `BOTTLESYNC_AWS_*` timeouts of the processes, in seconds:
    /// (connect, attempt, operation); `None`: the production defaults.
    pub aws_timeouts: Option<(f64, f64, f64)>,
    /// The fleet's DynamoDB and SQS calls go through a proxy injecting these
    /// faults (the test's own calls go straight to moto).
    pub faults: Option<FaultPlan>,
}

impl Default for StackOptions {
    /// What the fleet tests have always used: a 4 s visibility timeout,
    /// five receives, production's claim lease.
    fn default() -> Self {
        StackOptions {
            visibility_timeout_secs: 4,
            max_receive_count: MAX_RECEIVES,
            claim_lease_secs: None,
            aws_timeouts: None,
            faults: None,
        }
    }
}

impl StackOptions {
    /// Production's ratios (claim lease to visibility timeout to receives),
    /// scaled down in time: see [`ProdLikeTimes::SCALED`].
    pub fn prod_like() -> Self {
        let times = ProdLikeTimes::SCALED;
        StackOptions {
            visibility_timeout_secs: times.visibility_timeout_secs,
            max_receive_count: times.max_receive_count,
            claim_lease_secs: Some(times.claim_lease_secs),
            aws_timeouts: Some((
                times.aws_connect_timeout_secs,
                times.aws_attempt_timeout_secs,
                times.aws_operation_timeout_secs,
            )),
            faults: None,
        }
    }

    /// With the fleet's DynamoDB and SQS calls through a proxy with `plan`.
    pub fn lossy(mut self, plan: FaultPlan) -> Self {
        self.faults = Some(plan);
        self
    }
}

/// The proxies between the fleet's processes and moto.
pub struct LossyProxies {
    pub dynamodb: AwsRequestCounter,
    pub sqs: AwsRequestCounter,
}

/// A whole stack on moto: bucket, ledger table, two queues with a DLQ.
pub struct Stack {
    pub moto: Moto,
    pub standin: StandIn,
    pub webhook: WebhookReceiver,
    pub queue_url: String,
    pub large_queue_url: String,
    pub dlq_url: String,
    pub options: StackOptions,
    pub proxies: Option<LossyProxies>,
}

impl Stack {
    pub async fn start(catalog: Catalog) -> Stack {
        Stack::start_with(catalog, StackOptions::default()).await
    }

    pub async fn start_with(catalog: Catalog, options: StackOptions) -> Stack {
        let moto = Moto::start().await;
        moto.s3()
            .create_bucket()
            .bucket(BUCKET)
            .send()
            .await
            .unwrap();
        bottlesync_aws_harness::moto::create_ledger_table(&moto.dynamodb(), TABLE).await;
        let queues = FleetQueues::create(
            &moto.sqs(),
            options.visibility_timeout_secs,
            options.max_receive_count,
        )
        .await;
        let standin = StandIn::start(StandInConfig::new(catalog)).await.unwrap();
        let webhook = WebhookReceiver::start().await.unwrap();
        let proxies = match &options.faults {
            Some(plan) => Some(LossyProxies {
                dynamodb: AwsRequestCounter::start_lossy(&moto.dynamodb_endpoint, plan.clone())
                    .await
                    .unwrap(),
                sqs: AwsRequestCounter::start_lossy(&moto.endpoint, plan.clone())
                    .await
                    .unwrap(),
            }),
            None => None,
        };
        Stack {
            moto,
            standin,
            webhook,
            queue_url: queues.queue_url,
            large_queue_url: queues.large_queue_url,
            dlq_url: queues.dlq_url,
            options,
            proxies,
        }
    }

    /// Faults the proxies injected so far, by API.
    pub fn injected_faults(&self) -> BTreeMap<String, FaultTally> {
        let mut all = BTreeMap::new();
        if let Some(proxies) = &self.proxies {
            all.extend(proxies.dynamodb.faults());
            all.extend(proxies.sqs.faults());
        }
        all
    }

    /// The settings the Terraform stack gives the functions (and, with a
    /// lossy stack, the proxies as the DynamoDB and SQS endpoints).
    pub fn env(&self) -> Vec<(&'static str, String)> {
        let mut env = self.moto.env();
        if let Some(proxies) = &self.proxies {
            env.retain(|(k, _)| *k != "AWS_ENDPOINT_URL_DYNAMODB");
            env.push(("AWS_ENDPOINT_URL_DYNAMODB", proxies.dynamodb.url()));
            env.push(("AWS_ENDPOINT_URL_SQS", proxies.sqs.url()));
        }
        if let Some(lease) = self.options.claim_lease_secs {
            env.push(("BOTTLESYNC_CLAIM_LEASE_SECONDS", lease.to_string()));
        }
        if let Some((connect, attempt, operation)) = self.options.aws_timeouts {
            env.extend([
                (
                    "BOTTLESYNC_AWS_CONNECT_TIMEOUT_SECONDS",
                    connect.to_string(),
                ),
                (
                    "BOTTLESYNC_AWS_ATTEMPT_TIMEOUT_SECONDS",
                    attempt.to_string(),
                ),
                (
                    "BOTTLESYNC_AWS_OPERATION_TIMEOUT_SECONDS",
                    operation.to_string(),
                ),
            ]);
        }
        env.extend([
            ("BOTTLESYNC_BUCKET", BUCKET.to_string()),
            ("BOTTLESYNC_PREFIX", PREFIX.to_string()),
            ("BOTTLESYNC_LEDGER_TABLE", TABLE.to_string()),
            ("BOTTLESYNC_QUEUE_URL", self.queue_url.clone()),
            ("BOTTLESYNC_LARGE_QUEUE_URL", self.large_queue_url.clone()),
            ("BOTTLESYNC_DLQ_URL", self.dlq_url.clone()),
            ("BOTTLESYNC_API_URL", self.standin.api_url()),
            ("BOTTLESYNC_SLACK_WEBHOOK_URL", self.webhook.url()),
            ("BOTTLESYNC_ENVIRONMENT", "test".to_string()),
            // Tiny threshold: every run goes to the ECS queue that `work` consumes.
            ("BOTTLESYNC_SIZE_THRESHOLD_GB", "0.000000001".to_string()),
        ]);
        env
    }

    pub fn command(&self, args: &[&str]) -> std::process::Command {
        self.command_with(args, &[])
    }

    /// With settings overridden (or added).
    pub fn command_with(&self, args: &[&str], env: &[(&str, &str)]) -> std::process::Command {
        let mut cmd = bottlesync();
        cmd.env("AWS_REQUEST_CHECKSUM_CALCULATION", "when_required");
        for (k, v) in self.env() {
            cmd.env(k, v);
        }
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.args(args);
        cmd
    }

    pub async fn plan(&self) -> serde_json::Value {
        let run = run(self.command(&["plan", "--date", DATE])).await;
        run.assert_code(0);
        serde_json::from_str(&run.stdout)
            .unwrap_or_else(|e| panic!("plan output {e}: {}", run.stdout))
    }

    pub fn spawn_worker(&self, extra: &[&str]) -> Child {
        let mut args = vec![
            "work",
            "--drain",
            "--drain-grace",
            "3",
            "--retry-delay",
            "1",
        ];
        let visibility = self.options.visibility_timeout_secs.to_string();
        args.extend(["--visibility-timeout", &visibility]);
        args.extend_from_slice(extra);
        let mut cmd = self.command(&args);
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        cmd.spawn().unwrap()
    }

    pub async fn wait_all(children: Vec<Child>) -> Vec<Run> {
        tokio::task::spawn_blocking(move || {
            children
                .into_iter()
                .map(|c| Run::from(c.wait_with_output().unwrap()))
                .collect()
        })
        .await
        .unwrap()
    }

    pub fn adapters(&self) -> FleetAdapters {
        let queues = FleetQueues {
            queue_url: self.queue_url.clone(),
            large_queue_url: self.large_queue_url.clone(),
            dlq_url: self.dlq_url.clone(),
        };
        moto_fleet_adapters(
            &self.moto,
            BUCKET,
            PREFIX,
            TABLE,
            &queues,
            self.standin.api_url(),
        )
        .unwrap()
    }

    /// The mirror's archive view: the dated folders and
    /// `bottles_hash.json`, leaving out the fleet's own records under
    /// `<prefix>/.bottlesync/` and the brew view under `bottles/` and `api/`
    /// (`tests/brew_mirror.rs` checks that one as brew uses it).
    pub async fn objects(&self) -> BTreeSet<String> {
        let listed = self
            .moto
            .s3()
            .list_objects_v2()
            .bucket(BUCKET)
            .send()
            .await
            .unwrap();
        listed
            .contents()
            .iter()
            .filter_map(|o| o.key().map(String::from))
            .filter(|key| {
                [".bottlesync/", "bottles/", "api/"]
                    .iter()
                    .all(|dir| !key.starts_with(&format!("{PREFIX}/{dir}")))
            })
            .collect()
    }

    async fn object_bytes(&self, key: &str) -> Vec<u8> {
        super::s3_object_bytes(&self.moto.s3(), BUCKET, key).await
    }

    pub async fn object_sha256(&self, key: &str) -> String {
        sha256_hex(&self.object_bytes(key).await)
    }

    pub async fn hash_file_keys(&self) -> BTreeSet<String> {
        let bytes = self
            .object_bytes(&format!("{PREFIX}/bottles_hash.json"))
            .await;
        hash_file_keys(&bytes).expect("bottles_hash.json with a bottles object")
    }

    pub async fn dlq_depth(&self) -> u64 {
        let depth = SqsQueue::new(self.moto.sqs(), &self.dlq_url)
            .depth()
            .await
            .unwrap();
        depth.visible + depth.in_flight
    }

    pub async fn assert_no_partial_uploads(&self) {
        let uploads = self
            .moto
            .s3()
            .list_multipart_uploads()
            .bucket(BUCKET)
            .send()
            .await
            .unwrap();
        assert!(
            uploads.uploads().is_empty(),
            "incomplete multipart uploads: {:?}",
            uploads.uploads()
        );
    }
}

pub fn small_catalog() -> Catalog {
    let mut formulae = Catalog::tricky().formulae().to_vec();
    formulae.retain(|f| {
        [
            "wget",
            "openssl@3",
            "curl",
            "libidn2",
            "ca-certificates",
            "old-tool",
        ]
        .contains(&f.name.as_str())
    });
    Catalog::from_formulae(formulae)
}
