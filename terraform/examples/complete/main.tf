# A production deployment on real AWS (not applied in CI: scripts/terraform-check.sh
# validates it and plans terraform.tfvars.example with a mock provider).
# Copy this directory, or call the module from your own configuration with
# source = "github.com/<owner>/bottlesync//terraform?ref=<tag>".

provider "aws" {
  region = var.aws_region

  default_tags {
    tags = merge(var.default_tags, {
      Project     = "bottlesync"
      Environment = var.environment
    })
  }
}

module "bottlesync" {
  source = "../.."

  environment    = var.environment # part of every name: bottlesync-<environment>-*
  s3_bucket_name = var.s3_bucket_name
  mirror_prefix  = "homebrew"

  # Lambda zips from scripts/package.sh: local files (null: terraform/dist/,
  # where it writes them), or, with the module from a remote source (which
  # has no dist/), the zips uploaded to an S3 bucket of the same region.
  planner_zip_path         = var.planner_zip_path
  worker_zip_path          = var.worker_zip_path
  lambda_package_s3_bucket = var.lambda_package_s3_bucket
  planner_package_s3_key   = var.planner_package_s3_key
  worker_package_s3_key    = var.worker_package_s3_key
  # The ECS worker's image (the repository's Dockerfile). An ECR image also
  # scopes the execution role's pull permission to that repository.
  worker_image = var.worker_image

  # Weekly, Sundays 03:00 UTC; the newest three macOS releases, both architectures.
  schedule_expression = "cron(0 3 ? * SUN *)"
  bottle_tags         = "auto"
  # Every run ends: runs without progress for 30 minutes are reconciled
  # (checked every 10 minutes, whatever the schedule says).
  run_stall_minutes             = 30
  reconcile_schedule_expression = "rate(10 minutes)"

  # Runs estimated at 20 GB or more (a first sync, a new macOS release) go to
  # Fargate tasks, mostly on Spot; smaller runs to at most 20 Lambda workers.
  size_threshold_gb       = 20
  worker_max_concurrency  = 20
  ecs_max_tasks           = 10
  ecs_worker_concurrency  = 4
  ecs_fargate_spot_weight = 3
  ecs_fargate_weight      = 1
  # Public subnets without NAT: a NAT gateway costs more than the rest.
  enable_nat_gateway = false

  # Slack: the webhook goes write-only into a Secrets Manager secret created
  # here, or the functions read an existing secret. On when either is set.
  slack_webhook_url = var.slack_webhook_url
  slack_secret_arn  = var.slack_secret_arn

  # Alarms (DLQ not empty, stuck queues, Lambda and ECS failures) by email.
  alarm_emails = var.alarm_emails

  # Bottles listed in an external hash file count as already mirrored, e.g.:
  # external_hash_file_s3_bucket = "other-mirror"
  # external_hash_file_s3_key    = "homebrew/bottles_hash.json"

  # Brew clients download through CloudFront (HTTPS, bottles/ and api/ only;
  # the bucket stays private): terraform output -raw homebrew_client_env.
  # Your own host name: cdn_aliases + cdn_acm_certificate_arn (us-east-1).
  enable_cdn      = var.enable_cdn
  cdn_price_class = "PriceClass_100"

  # Keep the buckets, the ledger and the secret on `terraform destroy`.
  protect_data = true
}
