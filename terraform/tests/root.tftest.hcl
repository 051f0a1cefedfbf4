# The seed design's variables keep their names and meaning (wiring.tftest.hcl
# checks every setting; examples/complete/tests plans terraform.tfvars.example).

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
  # Any existing file: the mock provider never unzips it.
  planner_zip_path = "main.tf"
  worker_zip_path  = "main.tf"
}

run "seed_variables_reach_the_functions" {
  command = plan

  variables {
    s3_bucket_name            = "seed-mirror"
    worker_image              = "ghcr.io/example/bottlesync:1.0.0"
    environment               = "staging"
    size_threshold_gb         = 7
    schedule_expression       = "cron(30 4 ? * SAT *)"
    external_hash_file_url    = "https://mirror.example/bottles_hash.json"
    external_hash_file_s3_key = ""
  }

  assert {
    condition     = output.schedule_expression == "cron(30 4 ? * SAT *)"
    error_message = "schedule_expression reaches the rule"
  }
  assert {
    condition     = output.ecs_cluster_name == "bottlesync-staging" && output.bucket == "seed-mirror"
    error_message = "environment names the resources, s3_bucket_name the bucket"
  }
}

run "environment_defaults_to_prod" {
  command = plan

  variables {
    s3_bucket_name = "seed-mirror"
    worker_image   = "ghcr.io/example/bottlesync:1.0.0"
  }

  assert {
    condition     = output.ecs_cluster_name == "bottlesync-prod"
    error_message = "environment defaults to prod"
  }
}

# A remote module source has no terraform/dist: with the zips in S3 the plan
# needs no local file (without lambda_package_s3_bucket this plan fails on
# the missing dist/ zips).
run "lambda_packages_from_s3" {
  command = plan

  variables {
    s3_bucket_name                   = "seed-mirror"
    worker_image                     = "ghcr.io/example/bottlesync:1.0.0"
    planner_zip_path                 = null
    worker_zip_path                  = null
    lambda_package_s3_bucket         = "artifacts-123456789012"
    worker_package_s3_object_version = "3HL4kqtJlcpXroDTDmJ+rmSpXd3dIbrHY+MTRCxf3vjVBH40Nr8X8gdRQBpUMLUo"
  }
}
