# terraform.tfvars.example plans as it is. Run by scripts/terraform-check.sh
# (any directory with a terraform.tfvars.example is tested with it):
#   terraform test -var-file=terraform.tfvars.example

mock_provider "aws" {
  mock_data "aws_partition" {
    defaults = { partition = "aws" }
  }
  mock_data "aws_region" {
    defaults = { name = "us-east-1" }
  }
  mock_data "aws_availability_zones" {
    defaults = { names = ["us-east-1a", "us-east-1b"] }
  }
}

variables {
  # The zips scripts/package.sh builds do not exist in CI: any file will do.
  planner_zip_path = "main.tf"
  worker_zip_path  = "main.tf"
}

run "example_values_plan" {
  command = plan

  assert {
    condition     = module.bottlesync.bucket == var.s3_bucket_name && module.bottlesync.mirror_prefix == "homebrew"
    error_message = "the example's bucket and prefix"
  }
  assert {
    condition     = module.bottlesync.schedule_expression == "cron(0 3 ? * SUN *)"
    error_message = "the example runs weekly"
  }
  assert {
    condition     = contains(flatten([for s in module.bottlesync.iam_policies.ecs-execution.Statement : s.Resource]), "arn:aws:ecr:us-east-1:123456789012:repository/bottlesync")
    error_message = "the example's ECR image scopes the pull permission"
  }
  assert {
    condition     = module.bottlesync.slack_secret_arn == null
    error_message = "no webhook and no secret: notifications off"
  }
}

run "notifications_from_an_existing_secret" {
  command = plan

  variables {
    slack_secret_arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:slack-AbCdEf"
  }

  assert {
    condition     = module.bottlesync.slack_secret_arn == var.slack_secret_arn
    error_message = "notifications on, from the given secret (no secret created)"
  }
}

run "cdn_on_gives_the_client_settings" {
  command = plan

  variables {
    enable_cdn = true
  }

  assert {
    condition     = startswith(module.bottlesync.homebrew_client_env, "HOMEBREW_API_DOMAIN=https://")
    error_message = "enable_cdn passes through to the module"
  }
}

# The example as a remote-source user runs it: no local zips, the packages
# from an S3 bucket (the module's dist/ does not exist in Terraform's copy).
run "remote_source_packages_from_s3" {
  command = plan

  variables {
    planner_zip_path         = null
    worker_zip_path          = null
    lambda_package_s3_bucket = "my-artifacts"
    planner_package_s3_key   = "bottlesync/1.0.0/bottlesync-planner-lambda.zip"
    worker_package_s3_key    = "bottlesync/1.0.0/bottlesync-worker-lambda.zip"
  }
}
