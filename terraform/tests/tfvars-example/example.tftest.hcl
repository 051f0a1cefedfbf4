# terraform.tfvars.example plans as it is. Run by scripts/terraform-check.sh:
#   terraform test -test-directory=tests/tfvars-example -var-file=terraform.tfvars.example

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
    condition     = module.bottlesync.bucket == var.s3_bucket_name && module.bottlesync.mirror_prefix == var.mirror_prefix
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
}
