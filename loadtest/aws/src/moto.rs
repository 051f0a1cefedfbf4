//! `moto_server` for tests: a real AWS API (S3, SQS, DynamoDB, ...) on a
//! free loopback port, started per test and killed on drop. The binary is
//! `$BOTTLESYNC_MOTO_SERVER`, else `.venv/bin/moto_server` at the workspace
//! root (scripts/test.sh installs it there).

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A `moto_server` on a free loopback port, killed on drop.
pub struct Moto {
    children: Vec<Child>,
    /// S3, SQS and everything else (threaded, so long polls do not block).
    pub endpoint: String,
    /// DynamoDB, from a server that answers one request at a time: moto's
    /// conditional writes are not atomic under concurrency (see
    /// `loadtest/moto_serial.py`), DynamoDB's are.
    pub dynamodb_endpoint: String,
}

fn moto_binary() -> PathBuf {
    if let Ok(path) = std::env::var("BOTTLESYNC_MOTO_SERVER") {
        return PathBuf::from(path);
    }
    let local = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/moto_server");
    assert!(
        local.exists(),
        "moto_server not found at {}: run the test command from the README (scripts/test.sh), which installs it",
        local.display()
    );
    local
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Waits until the server at `endpoint` answers. `false` when `child`
/// exits first: it could not bind its port (another test's server took the
/// free port it was given in between), and the caller starts it again on
/// another.
async fn wait_until_up(endpoint: &str, child: &mut Child) -> bool {
    let deadline = Instant::now() + Duration::from_secs(60);
    let http = reqwest::Client::new();
    while http
        .get(format!("{endpoint}/moto-api/"))
        .send()
        .await
        .is_err()
    {
        if let Ok(Some(status)) = child.try_wait() {
            eprintln!(
                "moto_server for {endpoint} exited ({status}) before answering: trying another port"
            );
            return false;
        }
        assert!(
            Instant::now() < deadline,
            "moto_server did not come up at {endpoint} in 60 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    true
}

impl Moto {
    pub async fn start() -> Moto {
        let binary = moto_binary();
        // The virtualenv's python, next to its moto_server.
        let python = binary.with_file_name("python");
        require_awscrt(&python);
        // Beside the stand-in, where scripts/terraform-check.sh also runs it.
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../moto_serial.py");
        let spawn = |command: &mut Command, port: u16| {
            command
                .args(["-H", "127.0.0.1", "-p", &port.to_string()])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap_or_else(|e| panic!("{command:?}: {e}"))
        };
        for _attempt in 0..5 {
            let (port, serial_port) = (free_port(), free_port());
            let main = spawn(&mut Command::new(&binary), port);
            let serial = spawn(Command::new(&python).arg(&script), serial_port);
            let mut moto = Moto {
                children: vec![main, serial],
                endpoint: format!("http://127.0.0.1:{port}"),
                dynamodb_endpoint: format!("http://127.0.0.1:{serial_port}"),
            };
            let (endpoint, dynamodb) = (moto.endpoint.clone(), moto.dynamodb_endpoint.clone());
            let (main, serial) = moto.children.split_at_mut(1);
            if wait_until_up(&endpoint, &mut main[0]).await
                && wait_until_up(&dynamodb, &mut serial[0]).await
            {
                return moto;
            }
            // Dropped: both killed.
        }
        panic!("moto_server did not start on five pairs of free ports")
    }

    /// The environment the SDK needs to talk to this server.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL", self.endpoint.clone()),
            ("AWS_ENDPOINT_URL_DYNAMODB", self.dynamodb_endpoint.clone()),
            ("AWS_ACCESS_KEY_ID", "testing".into()),
            ("AWS_SECRET_ACCESS_KEY", "testing".into()),
            ("AWS_REGION", "us-east-1".into()),
            ("AWS_EC2_METADATA_DISABLED", "true".into()),
        ]
    }

    pub fn apply(&self, cmd: &mut Command) {
        for (key, value) in self.env() {
            cmd.env(key, value);
        }
    }

    /// SDK settings for this server (fake credentials, us-east-1, few retries).
    pub fn sdk_config(&self) -> aws_config::SdkConfig {
        let creds =
            aws_credential_types::Credentials::new("testing", "testing", None, None, "moto");
        aws_config::SdkConfig::builder()
            .behavior_version(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new("us-east-1"))
            .endpoint_url(&self.endpoint)
            .credentials_provider(
                aws_credential_types::provider::SharedCredentialsProvider::new(creds),
            )
            .retry_config(aws_config::retry::RetryConfig::standard().with_max_attempts(2))
            .build()
    }

    pub fn s3(&self) -> aws_sdk_s3::Client {
        let config = aws_sdk_s3::config::Builder::from(&self.sdk_config())
            .force_path_style(true)
            .build();
        aws_sdk_s3::Client::from_conf(config)
    }

    pub fn sqs(&self) -> aws_sdk_sqs::Client {
        aws_sdk_sqs::Client::new(&self.sdk_config())
    }

    pub fn dynamodb(&self) -> aws_sdk_dynamodb::Client {
        let config = aws_sdk_dynamodb::config::Builder::from(&self.sdk_config())
            .endpoint_url(&self.dynamodb_endpoint)
            .build();
        aws_sdk_dynamodb::Client::from_conf(config)
    }
}

/// Without awscrt, moto stores a CRC32 labelled CRC64NVME for multipart
/// uploads that declare CRC64NVME (ours do), and every SDK read of such an
/// object fails its checksum: refuse to start rather than fail far away.
fn require_awscrt(python: &Path) {
    static CHECKED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    let present = *CHECKED.get_or_init(|| {
        Command::new(python)
            .args(["-c", "import awscrt"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    });
    assert!(
        present,
        "{} has no awscrt, which moto needs for CRC64NVME checksums: run scripts/test.sh, which installs it",
        python.display()
    );
}

impl Drop for Moto {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Creates a table shaped like the bottlesync ledger: one string partition
/// key `pk`, no sort key, on-demand billing (as Terraform creates it).
pub async fn create_ledger_table(client: &aws_sdk_dynamodb::Client, name: &str) {
    use aws_sdk_dynamodb::types::{
        AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
    };
    client
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name("pk")
                .attribute_type(ScalarAttributeType::S)
                .build()
                .expect("attribute definition"),
        )
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name("pk")
                .key_type(KeyType::Hash)
                .build()
                .expect("key schema"),
        )
        .send()
        .await
        .unwrap_or_else(|e| panic!("cannot create table {name}: {e:?}"));
}

/// The fleet's queues as Terraform creates them: `work` (Lambda) and
/// `work-large` (ECS), both dead-lettering into `dlq` after
/// `max_receive_count` receives.
pub struct FleetQueues {
    pub queue_url: String,
    pub large_queue_url: String,
    pub dlq_url: String,
}

impl FleetQueues {
    pub async fn create(
        sqs: &aws_sdk_sqs::Client,
        visibility_timeout_secs: u32,
        max_receive_count: u32,
    ) -> FleetQueues {
        use aws_sdk_sqs::types::QueueAttributeName;
        let create = |name: &'static str, attributes: Vec<(QueueAttributeName, String)>| async move {
            let mut request = sqs.create_queue().queue_name(name);
            for (key, value) in attributes {
                request = request.attributes(key, value);
            }
            request
                .send()
                .await
                .unwrap_or_else(|e| panic!("cannot create queue {name}: {e:?}"))
                .queue_url
                .expect("queue url")
        };
        let dlq_url = create("dlq", vec![]).await;
        let dlq_arn = sqs
            .get_queue_attributes()
            .queue_url(&dlq_url)
            .attribute_names(QueueAttributeName::QueueArn)
            .send()
            .await
            .expect("dlq attributes")
            .attributes
            .and_then(|mut a| a.remove(&QueueAttributeName::QueueArn))
            .expect("dlq arn");
        let redrive = format!(
            r#"{{"deadLetterTargetArn":"{dlq_arn}","maxReceiveCount":"{max_receive_count}"}}"#
        );
        let work_attributes = || {
            vec![
                (
                    QueueAttributeName::VisibilityTimeout,
                    visibility_timeout_secs.to_string(),
                ),
                (QueueAttributeName::RedrivePolicy, redrive.clone()),
            ]
        };
        FleetQueues {
            queue_url: create("work", work_attributes()).await,
            large_queue_url: create("work-large", work_attributes()).await,
            dlq_url,
        }
    }
}

/// The fleet's timing in production, and the same ratios scaled down in
/// time for fault tests (`tests/fleet_faults.rs`) and `bottlesync-load
/// --preset prod-like`. The ratio that matters: a claim's lease (900 s)
/// against a message's visibility timeout (60 s) times its receives (5). A
/// claim stranded by a dead worker or a lost answer outlives every receive
/// of its message unless the fleet recognises or releases it; the load
/// harness's old 20 s claims and 10 s visibility hid that.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct ProdLikeTimes {
    /// `BOTTLESYNC_CLAIM_LEASE_SECONDS`.
    pub claim_lease_secs: u32,
    /// The work queues' VisibilityTimeout.
    pub visibility_timeout_secs: u32,
    /// The work queues' redrive maxReceiveCount (a count: never scaled).
    pub max_receive_count: u32,
    /// The workers' `--retry-delay` (first backoff of a failed bottle).
    pub retry_delay_secs: u32,
    /// `BOTTLESYNC_AWS_CONNECT_TIMEOUT_SECONDS`.
    pub aws_connect_timeout_secs: f64,
    /// `BOTTLESYNC_AWS_ATTEMPT_TIMEOUT_SECONDS`.
    pub aws_attempt_timeout_secs: f64,
    /// `BOTTLESYNC_AWS_OPERATION_TIMEOUT_SECONDS`.
    pub aws_operation_timeout_secs: f64,
    /// How long the lossy proxy holds an answer: past the attempt timeout.
    pub hold_answer_secs: f64,
    /// A Slack outage (the issue's five minutes).
    pub slack_outage_secs: f64,
}

impl ProdLikeTimes {
    /// Production: Terraform's and the settings' defaults; 60 s is the middle
    /// of the 30-120 s visibility timeouts an SQS consumer of this kind uses.
    pub const PRODUCTION: ProdLikeTimes = ProdLikeTimes {
        claim_lease_secs: 900,
        visibility_timeout_secs: 60,
        max_receive_count: 5,
        retry_delay_secs: 10,
        aws_connect_timeout_secs: 5.0,
        aws_attempt_timeout_secs: 15.0,
        aws_operation_timeout_secs: 60.0,
        hold_answer_secs: 20.0,
        slack_outage_secs: 300.0,
    };

    /// Time divided by 15 (lease 60 s, visibility 4 s, 5 receives: lease
    /// = 3 x visibility x receives, as in production). The SDK timeouts are
    /// only shortened to 10 s per attempt: moto's one-request-at-a-time
    /// DynamoDB queues a planner's burst of writes for seconds on a busy
    /// 2-core machine (3 and 5 s attempts timed out three times in a row
    /// there), and a timeout that fires on a healthy call is a fault
    /// production does not have at that rate.
    pub const SCALED: ProdLikeTimes = ProdLikeTimes {
        claim_lease_secs: 60,
        visibility_timeout_secs: 4,
        max_receive_count: 5,
        retry_delay_secs: 1,
        aws_connect_timeout_secs: 5.0,
        aws_attempt_timeout_secs: 10.0,
        aws_operation_timeout_secs: 45.0,
        hold_answer_secs: 12.0,
        slack_outage_secs: 20.0,
    };
}
