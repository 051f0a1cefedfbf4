# The module (../.., exactly as a deployment calls it) against moto_server:
# this example's provider points every endpoint at the given URL. The end-to-end
# check in scripts/terraform-check.sh applies this, runs `bottlesync plan`
# and `bottlesync work --drain` with the outputs, and destroys it.

locals {
  moto     = trimsuffix(var.moto_endpoint, "/")
  dynamodb = trimsuffix(coalesce(var.moto_dynamodb_endpoint, var.moto_endpoint), "/")
}

provider "aws" {
  region                      = "us-east-1"
  access_key                  = "testing"
  secret_key                  = "testing"
  skip_credentials_validation = true
  skip_requesting_account_id  = true
  skip_metadata_api_check     = true
  skip_region_validation      = true
  s3_use_path_style           = true

  endpoints {
    appautoscaling = local.moto
    cloudwatch     = local.moto
    dynamodb       = local.dynamodb
    ec2            = local.moto
    ecs            = local.moto
    events         = local.moto
    iam            = local.moto
    kms            = local.moto
    lambda         = local.moto
    logs           = local.moto
    s3             = local.moto
    secretsmanager = local.moto
    sns            = local.moto
    sqs            = local.moto
    sts            = local.moto
  }

  default_tags {
    tags = {
      Project     = "bottlesync"
      Environment = var.environment
    }
  }
}

module "bottlesync" {
  source = "../.."

  environment       = var.environment
  s3_bucket_name    = var.s3_bucket_name
  mirror_prefix     = var.mirror_prefix
  api_url           = var.api_url
  size_threshold_gb = var.size_threshold_gb
  slack_webhook_url = var.slack_webhook_url
  planner_zip_path  = var.planner_zip_path
  worker_zip_path   = var.worker_zip_path
  worker_image      = var.worker_image

  enable_redrive_allow_policy = var.enable_redrive_allow_policy
  enable_ecs_autoscaling      = var.enable_ecs_autoscaling
  enable_event_source_mapping = var.enable_event_source_mapping
  enforce_tls                 = var.enforce_tls

  # A throwaway stack: destroy may delete the buckets, table and secret.
  protect_data = false
  # One zone is enough for moto, and quicker.
  az_count = 1
}

# The operators' role: what an operator's shell runs `bottlesync status` and
# `bottlesync dlq replay` with (the module's operator policy, attached as a
# deployment would attach it to its own role or group).
data "aws_caller_identity" "current" {}

resource "aws_iam_role" "operator" {
  name = "bottlesync-${var.environment}-operator"
  assume_role_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Effect    = "Allow"
      Principal = { AWS = "arn:aws:iam::${data.aws_caller_identity.current.account_id}:root" }
      Action    = "sts:AssumeRole"
    }]
  })
}

resource "aws_iam_role_policy_attachment" "operator" {
  role       = aws_iam_role.operator.name
  policy_arn = module.bottlesync.operator_policy_arn
}
